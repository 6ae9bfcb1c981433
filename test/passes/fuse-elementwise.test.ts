import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InternalError } from "../../common/diagnostic.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseElementwisePass } from "../../compiler/passes/fuse-elementwise.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";
import { expectRewrite, outputDifference } from "./equivalence.ts";

const same = (ir: string) => expectRewrite(fuseElementwisePass, ir, ir);

describe("fuse-elementwise", () => {
  it("turns a chain of elementwise ops, a broadcast operand and a constant into one fused node", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "w"} : f32[4]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = const {value = 0.5} : f32[]
        %5 = add(%3, %4) : f32[N, 4]
        output "y" = %5
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "w"} : f32[4]
        %2 = fused(%0, %1) {kind = "elementwise"} : f32[N, 4] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = input {name = "1"} : f32[4]
          %2 = mul(%0, %1) : f32[N, 4]
          %3 = exp(%2) : f32[N, 4]
          %4 = const {value = 0.5} : f32[]
          %5 = add(%3, %4) : f32[N, 4]
          output "out" = %5
        }
        output "y" = %2
      }`,
    );
  });

  it("takes broadcasts into the chain, computing a value read twice inside it once", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "s"} : f32[N, 1]
        %1 = broadcast(%0) {shape = [N, 3]} : f32[N, 3]
        %2 = tanh(%1) : f32[N, 3]
        %3 = mul(%2, %2) : f32[N, 3]
        %4 = sub(%3, %2) : f32[N, 3]
        output "y" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "s"} : f32[N, 1]
        %1 = fused(%0) {kind = "elementwise"} : f32[N, 3] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 1]
          %1 = broadcast(%0) {shape = [N, 3]} : f32[N, 3]
          %2 = tanh(%1) : f32[N, 3]
          %3 = mul(%2, %2) : f32[N, 3]
          %4 = sub(%3, %2) : f32[N, 3]
          output "out" = %4
        }
        output "y" = %1
      }`,
    );
  });

  it("keeps a value used outside its chain materialised: a graph output, or one read by two chains", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "w"} : f32[4]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = neg(%3) : f32[N, 4]
        %5 = sigmoid(%3) : f32[N, 4]
        %6 = const {value = 2} : f32[]
        %7 = mul(%5, %6) : f32[N, 4]
        %8 = sum(%3) : f32[]
        output "h" = %3
        output "y" = %4
        output "z" = %7
        output "s" = %8
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "w"} : f32[4]
        %2 = fused(%0, %1) {kind = "elementwise"} : f32[N, 4] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = input {name = "1"} : f32[4]
          %2 = mul(%0, %1) : f32[N, 4]
          %3 = exp(%2) : f32[N, 4]
          output "out" = %3
        }
        %3 = neg(%2) : f32[N, 4]
        %4 = fused(%2) {kind = "elementwise"} : f32[N, 4] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = sigmoid(%0) : f32[N, 4]
          %2 = const {value = 2} : f32[]
          %3 = mul(%1, %2) : f32[N, 4]
          output "out" = %3
        }
        %5 = sum(%2) : f32[]
        output "h" = %2
        output "y" = %3
        output "z" = %4
        output "s" = %5
      }`,
    );
  });

  it("fuses the residual add and scale after a projection into the matmul as its epilogue", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "r"} : f32[N, 6]
        %2 = param {name = "w"} : f32[4, 6]
        %3 = matmul(%0, %2) : f32[N, 6]
        %4 = const {value = 0.8} : f32[]
        %5 = mul(%3, %4) : f32[N, 6]
        %6 = add(%1, %5) : f32[N, 6]
        output "y" = %6
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "r"} : f32[N, 6]
        %2 = param {name = "w"} : f32[4, 6]
        %3 = fused(%0, %2, %1) {kind = "epilogue"} : f32[N, 6] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = input {name = "1"} : f32[4, 6]
          %2 = input {name = "2"} : f32[N, 6]
          %3 = matmul(%0, %1) : f32[N, 6]
          %4 = const {value = 0.8} : f32[]
          %5 = mul(%3, %4) : f32[N, 6]
          %6 = add(%2, %5) : f32[N, 6]
          output "out" = %6
        }
        output "y" = %3
      }`,
    );
  });

  it("fuses SwiGLU's silu(gate) * up into the up projection; the gate projection stays", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = param {name = "gate"} : f32[4, 6]
        %2 = param {name = "up"} : f32[4, 6]
        %3 = param {name = "down"} : f32[6, 4]
        %4 = matmul(%0, %1) : f32[N, 6]
        %5 = silu(%4) : f32[N, 6]
        %6 = matmul(%0, %2) : f32[N, 6]
        %7 = mul(%5, %6) : f32[N, 6]
        %8 = matmul(%7, %3) : f32[N, 4]
        output "y" = %8
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = param {name = "gate"} : f32[4, 6]
        %2 = param {name = "up"} : f32[4, 6]
        %3 = param {name = "down"} : f32[6, 4]
        %4 = matmul(%0, %1) : f32[N, 6]
        %5 = fused(%4, %0, %2) {kind = "epilogue"} : f32[N, 6] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 6]
          %1 = input {name = "1"} : f32[N, 4]
          %2 = input {name = "2"} : f32[4, 6]
          %3 = silu(%0) : f32[N, 6]
          %4 = matmul(%1, %2) : f32[N, 6]
          %5 = mul(%3, %4) : f32[N, 6]
          output "out" = %5
        }
        %6 = matmul(%5, %3) : f32[N, 4]
        output "y" = %6
      }`,
    );
  });

  it("fuses sum(lambda_q1 * lambda_k1) as a prologue, and RMSNorm into a prologue and one elementwise kernel", () => {
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = param {name = "lambda_q1"} : f32[8]
        %1 = param {name = "lambda_k1"} : f32[8]
        %2 = mul(%0, %1) : f32[8]
        %3 = sum(%2) : f32[]
        %4 = input {name = "x"} : f32[N, 8]
        %5 = mul(%4, %4) : f32[N, 8]
        %6 = mean(%5) {axes = [-1], keepdims = true} : f32[N, 1]
        %7 = const {value = 0.00001} : f32[]
        %8 = add(%6, %7) : f32[N, 1]
        %9 = sqrt(%8) : f32[N, 1]
        %10 = div(%4, %9) : f32[N, 8]
        %11 = mul(%10, %3) : f32[N, 8]
        output "y" = %11
      }`,
      `graph g [N] {
        %0 = param {name = "lambda_q1"} : f32[8]
        %1 = param {name = "lambda_k1"} : f32[8]
        %2 = fused(%0, %1) {kind = "prologue"} : f32[] body = graph fused {
          %0 = input {name = "0"} : f32[8]
          %1 = input {name = "1"} : f32[8]
          %2 = mul(%0, %1) : f32[8]
          %3 = sum(%2) : f32[]
          output "out" = %3
        }
        %3 = input {name = "x"} : f32[N, 8]
        %4 = fused(%3) {kind = "prologue"} : f32[N, 1] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 8]
          %1 = mul(%0, %0) : f32[N, 8]
          %2 = mean(%1) {axes = [-1], keepdims = true} : f32[N, 1]
          output "out" = %2
        }
        %5 = fused(%4, %3, %2) {kind = "elementwise"} : f32[N, 8] body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 1]
          %1 = input {name = "1"} : f32[N, 8]
          %2 = input {name = "2"} : f32[]
          %3 = const {value = 0.00001} : f32[]
          %4 = add(%0, %3) : f32[N, 1]
          %5 = sqrt(%4) : f32[N, 1]
          %6 = div(%1, %5) : f32[N, 8]
          %7 = mul(%6, %2) : f32[N, 8]
          output "out" = %7
        }
        output "y" = %5
      }`,
    );
  });

  it("does not fuse a reduction whose operand has a second user", () => {
    same(`graph g {
      %0 = input {name = "a"} : f32[8]
      %1 = input {name = "b"} : f32[8]
      %2 = mul(%0, %1) : f32[8]
      %3 = sum(%2) : f32[]
      %4 = neg(%2) : f32[8]
      output "s" = %3
      output "n" = %4
    }`);
  });

  it("does not fuse a matmul whose result is used twice, or is an output, into its reader", () => {
    same(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = input {name = "w"} : f32[4, 6]
      %2 = matmul(%0, %1) : f32[N, 6]
      %3 = exp(%2) : f32[N, 6]
      %4 = neg(%2) : f32[N, 6]
      %5 = matmul(%0, %1) : f32[N, 6]
      %6 = tanh(%5) : f32[N, 6]
      output "e" = %3
      output "n" = %4
      output "m" = %5
      output "t" = %6
    }`);
  });

  it("does not fuse an epilogue that grows the matmul's shape, nor a prologue whose chain invents a dim", () => {
    same(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = input {name = "w"} : f32[4, 6]
      %2 = input {name = "b"} : f32[2, N, 6]
      %3 = matmul(%0, %1) : f32[N, 6]
      %4 = add(%3, %2) : f32[2, N, 6]
      output "y" = %4
    }`);
    // N reaches the chain through the broadcast only: a reduction over it could not bind N.
    expectRewrite(
      fuseElementwisePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[4]
        %1 = input {name = "n"} : f32[N]
        %2 = broadcast(%0) {shape = [N, 4]} : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = sum(%3) : f32[]
        output "s" = %4
        output "n" = %1
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[4]
        %1 = input {name = "n"} : f32[N]
        %2 = fused(%0) {kind = "elementwise"} : f32[N, 4] body = graph fused [N] {
          %0 = input {name = "0"} : f32[4]
          %1 = broadcast(%0) {shape = [N, 4]} : f32[N, 4]
          %2 = exp(%1) : f32[N, 4]
          output "out" = %2
        }
        %3 = sum(%2) : f32[]
        output "s" = %3
        output "n" = %1
      }`,
    );
  });

  it("leaves a lone elementwise op as it is", () => {
    same(`graph g {
      %0 = input {name = "x"} : f32[3]
      %1 = const {value = 2} : f32[]
      %2 = mul(%0, %1) : f32[3]
      output "y" = %2
    }`);
  });

  it("rejects bodies that do not fit their kind or their operands, as verifier errors", () => {
    const graphWith = (node: string) => `graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = input {name = "z"} : f32[N, 5]
      ${node}
      output "y" = %2
    }`;
    const body = `graph fused [N] {
      %0 = input {name = "0"} : f32[N, 4]
      %1 = sum(%0) : f32[]
      output "out" = %1
    }`;
    expect(() => parseGraph(graphWith(`%2 = fused(%0) {kind = "prologue"} : f32[] body = ${body}`))).not.toThrow();
    expect(() => parseGraph(graphWith(`%2 = fused(%0) {kind = "elementwise"} : f32[] body = ${body}`))).toThrow(/an elementwise body holds elementwise ops and broadcasts, not sum/);
    expect(() => parseGraph(graphWith(`%2 = fused(%0, %0) {kind = "prologue"} : f32[] body = ${body}`))).toThrow(/its body has 1 inputs, but it has 2 operands/);
    expect(() => parseGraph(graphWith(`%2 = fused(%0) {kind = "prologue"} : f32[] body = graph fused { %0 = }`))).toThrow(/expected an op name, found "}"/);
    expect(() => parseGraph(graphWith(`%2 = fused(%0) {body = ${JSON.stringify(body)}, kind = "prologue"} : f32[]`))).toThrow(/attribute body must be a graph, written after the node's type/);
    const g = parseGraph(graphWith(`%2 = fused(%0) {kind = "prologue"} : f32[] body = ${body}`));
    g.nodes[2].operands = [1];
    expect(() => verifyGraph(g)).toThrow(InternalError);
    expect(() => verifyGraph(g)).toThrow(/operand 0 is f32\[N, 5\], but body input "0" is f32\[N, 4\]/);
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, is a fixpoint, and decomposes back to the same values", () => {
    fc.assert(
      fc.property(arbitraryGraphCase({ dims: true }), ({ graph, dims, inputs }) => {
        const after = fuseElementwisePass.run(graph);
        verifyGraph(after);
        expect(after.nodes.length).toBeLessThanOrEqual(graph.nodes.length);
        const before = evaluate(graph, inputs, new Map(), { dims });
        expect(outputDifference(before, evaluate(after, inputs, new Map(), { dims }))).toBeUndefined();
        expect(printGraph(fuseElementwisePass.run(after))).toBe(printGraph(after));
        expect(printGraph(parseGraph(printGraph(after)))).toBe(printGraph(after));
        expect(outputDifference(before, evaluate(decompose(after), inputs, new Map(), { dims }))).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it("fuses something in most random graphs (the property above is not vacuous)", () => {
    const graphs = fc.sample(arbitraryGraphCase({ dims: true }), { numRuns: 200, seed: 7 });
    const kinds = new Map<string, number>();
    for (const { graph } of graphs)
      for (const n of fuseElementwisePass.run(graph).nodes) if (n.op === "fused") kinds.set(String(n.attrs.kind), (kinds.get(String(n.attrs.kind)) ?? 0) + 1);
    // Random graphs rarely give a matmul a sole elementwise reader; the backend tests cover epilogues on purpose.
    expect(kinds.get("elementwise")).toBeGreaterThan(100);
    expect(kinds.get("prologue")).toBeGreaterThan(5);
    expect(kinds.get("epilogue")).toBeGreaterThan(0);
  });
});
