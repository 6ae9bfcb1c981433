// Recognition of attention written by hand: what must become diffattn / attention (and then
// flash kernels), the near misses that must not, and equivalence on random graphs.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseAttentionPass } from "../../compiler/passes/fuse-attention.ts";
import { fuseDualSoftmaxPass } from "../../compiler/passes/fuse-dual-softmax.ts";
import type { Pass } from "../../compiler/passes/pass.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { recognizeAttentionPass } from "../../compiler/passes/recognize-attention.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { randomInputs } from "../../runtime/init.ts";
import { testWeights } from "../support/weights.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { checkWithinTolerance, expectCloseOutputs } from "./equivalence.ts";
import { compileSource } from "../support/dsl.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";

const ops = (g: Graph) => g.nodes.map((n) => n.op);

/** Hand-written diff attention over heads as a batch dim, with `body` in place of its last lines. */
const handWritten = (body: string, extra = "") => `model Hand(H = 2, d = 4) {
  dim N
  input q1: f32[H, N, d]
  input q2: f32[H, N, d]
  input k1: f32[H, N, d]
  input k2: f32[H, N, d]
  input v: f32[H, N, 2 * d]
  ${extra}
  let s = d ** -0.5
  ${body}
}`;

/** The two maps and their combination, with one part changed. */
const dual = ({ k2 = "k2", scale2 = "s", axis = "", p2 = "q2 @ transpose(k2) * s", combined = "p1 - 0.5 * p2", v = "v", extra = "" }) =>
  `let p1 = softmax(q1 @ transpose(k1) * s${axis})
let p2 = softmax(${p2.replace("k2", k2).replace("* s", `* ${scale2}`)})
output y = (${combined}) @ ${v}
${extra}`;

describe("recognize-attention", () => {
  it("turns hand-written differential attention into diffattn (IR before and after)", () => {
    const before = `graph G [N] {
  %q1 = input {name = "q1"} : f32[2, N, 4]
  %q2 = input {name = "q2"} : f32[2, N, 4]
  %k1 = input {name = "k1"} : f32[2, N, 4]
  %k2 = input {name = "k2"} : f32[2, N, 4]
  %v = input {name = "v"} : f32[2, N, 8]
  %lam = input {name = "lam"} : f32[N, 1]
  %s = const {value = 0.5} : f32[]
  %kt1 = transpose(%k1) : f32[2, 4, N]
  %a1 = matmul(%q1, %kt1) : f32[2, N, N]
  %s1 = mul(%a1, %s) : f32[2, N, N]
  %p1 = softmax(%s1) : f32[2, N, N]
  %kt2 = transpose(%k2) {perm = [0, 2, 1]} : f32[2, 4, N]
  %a2 = matmul(%q2, %kt2) : f32[2, N, N]
  %s2 = div(%a2, %s) : f32[2, N, N]
  %p2 = softmax(%s2) {axis = 2} : f32[2, N, N]
  %l2 = mul(%p2, %lam) : f32[2, N, N]
  %d = sub(%p1, %l2) : f32[2, N, N]
  %o = matmul(%d, %v) : f32[2, N, 8]
  output "o" = %o
}`;
    // The second map divides by 0.5: the same scale only if the rule reads div as 1/c. It does
    // not match here, so first the map with equal scales.
    const same = before.replace("%s2 = div(%a2, %s)", "%s2 = mul(%s, %a2)");
    const after = `graph G [N] {
  %0 = input {name = "q1"} : f32[2, N, 4]
  %1 = input {name = "q2"} : f32[2, N, 4]
  %2 = input {name = "k1"} : f32[2, N, 4]
  %3 = input {name = "k2"} : f32[2, N, 4]
  %4 = input {name = "v"} : f32[2, N, 8]
  %5 = input {name = "lam"} : f32[N, 1]
  %6 = concat(%0, %1) {axis = -1} : f32[2, N, 8]
  %7 = concat(%2, %3) {axis = -1} : f32[2, N, 8]
  %8 = diffattn(%6, %7, %4, %5) {heads = 1, scale = 0.5} : f32[2, N, 1, 8]
  %9 = reshape(%8) {shape = [2, N, 8]} : f32[2, N, 8]
  output "o" = %9
}`;
    const g = parseGraph(same);
    const out = recognizeAttentionPass.run(g);
    verifyGraph(out);
    expect(printGraph(out)).toBe(printGraph(parseGraph(after)));
    const dims = new Map([["N", 5]]);
    expectCloseOutputs(g, out, randomInputs(g, dims, 2), dims);
    // scale 0.5 against 1 / 0.5 = 2: two scales, a near miss.
    expect(printGraph(recognizeAttentionPass.run(parseGraph(before)))).toBe(printGraph(parseGraph(before)));
    // A division by 2 is the scale 0.5.
    const divided = same.replace("%s1 = mul(%a1, %s)", "%s1 = div(%a1, %two)").replace('%s = const {value = 0.5} : f32[]', '%s = const {value = 0.5} : f32[]\n  %two = const {value = 2} : f32[]');
    expect(ops(recognizeAttentionPass.run(parseGraph(divided)))).toContain("diffattn");
  });

  it("turns hand-written causal attention (the decomposition's mask) into attention", () => {
    const g = parseGraph(`graph G [N, M] {
  %q = input {name = "q"} : f32[N, 4]
  %k = input {name = "k"} : f32[M, 4]
  %v = input {name = "v"} : f32[M, 3]
  %kt = transpose(%k) : f32[4, M]
  %a = matmul(%q, %kt) : f32[N, M]
  %rows = iota {shape = [N, M]} : i32[N, M]
  %cols = iota {shape = [N, M], axis = 1} : i32[N, M]
  %nm = numel {shape = [M]} : i32[]
  %nn = numel {shape = [N]} : i32[]
  %off = sub(%nm, %nn) : i32[]
  %last = add(%rows, %off) : i32[N, M]
  %mask = le(%cols, %last) : bool[N, M]
  %ninf = const {value = -inf} : f32[]
  %m = where(%mask, %a, %ninf) : f32[N, M]
  %p = softmax(%m) : f32[N, M]
  %o = matmul(%p, %v) : f32[N, 3]
  output "o" = %o
}`);
    const out = recognizeAttentionPass.run(g);
    expect(ops(out)).toEqual(["input", "input", "input", "attention", "reshape"]);
    expect(out.nodes[3].attrs).toMatchObject({ heads: 1, causal: true, scale: 1 });
    // M < N: the first queries see no key and give 0 both ways.
    for (const [n, m] of [[4, 6], [6, 4]]) {
      const dims = new Map([["N", n], ["M", m]]);
      expectCloseOutputs(g, out, randomInputs(g, dims, n), dims);
    }
  });

  it("leaves masks that are not diffattn's causal mask alone (near misses)", () => {
    const masked = (lines: string, dims = "N, M", m = "M") => `graph G [${dims}] {
  %q = input {name = "q"} : f32[N, 4]
  %k = input {name = "k"} : f32[${m}, 4]
  %v = input {name = "v"} : f32[${m}, 3]
  %kt = transpose(%k) : f32[4, ${m}]
  %a = matmul(%q, %kt) : f32[N, ${m}]
${lines}
  %ninf = const {value = -inf} : f32[]
  %s = where(%mask, %a, %ninf) : f32[N, ${m}]
  %p = softmax(%s) : f32[N, ${m}]
  %o = matmul(%p, %v) : f32[N, 3]
  output "o" = %o
}`;
    const iota = (shape: string, axis: number, dtype = "i32") => `iota {shape = [${shape}], axis = ${axis}, dtype = ${dtype}} : ${dtype}[${shape}]`;
    const nearMisses = [
      // cols of one column: all 0, every key visible.
      masked(`  %rows = ${iota("N, N", 0)}\n  %cols = ${iota("N, 1", 1)}\n  %mask = le(%cols, %rows) : bool[N, N]`, "N", "N"),
      // rows as a vector over keys: it holds j, not i.
      masked(`  %rows = ${iota("N", 0)}\n  %cols = ${iota("N, N", 1)}\n  %mask = le(%cols, %rows) : bool[N, N]`, "N", "N"),
      // i8 indices wrap past 127.
      masked(`  %rows = ${iota("N, N", 0, "i8")}\n  %cols = ${iota("N, N", 1, "i8")}\n  %mask = le(%cols, %rows) : bool[N, N]`, "N", "N"),
      // The mask the other way round: keys at or after the query.
      masked(`  %rows = ${iota("N, N", 0)}\n  %cols = ${iota("N, N", 1)}\n  %mask = le(%rows, %cols) : bool[N, N]`, "N", "N"),
      // N and M may differ, but the offset M - N is missing.
      masked(`  %rows = ${iota("N, M", 0)}\n  %cols = ${iota("N, M", 1)}\n  %mask = le(%cols, %rows) : bool[N, M]`),
      // Strictly before the query.
      masked(`  %rows = ${iota("N, N", 0)}\n  %cols = ${iota("N, N", 1)}\n  %mask = lt(%cols, %rows) : bool[N, N]`, "N", "N"),
    ];
    for (const text of nearMisses) expect(ops(recognizeAttentionPass.run(parseGraph(text)))).not.toContain("attention");
    // The same with the offset is the causal mask.
    const causal = masked(`  %rows = ${iota("N, M", 0)}\n  %cols = ${iota("N, M", 1)}\n  %nm = numel {shape = [M]} : i32[]\n  %nn = numel {shape = [N]} : i32[]\n  %off = sub(%nm, %nn) : i32[]\n  %last = add(%rows, %off) : i32[N, M]\n  %mask = ge(%last, %cols) : bool[N, M]`);
    expect(ops(recognizeAttentionPass.run(parseGraph(causal)))).toContain("attention");
  });

  it("declines what the ops cannot take or would compute differently: symbolic head widths, a 1 / c out of range", () => {
    for (const width of ["input q: f32[N, D]\n  input k: f32[N, D]\n  input v: f32[N, 8]", "input q: f32[N, 4]\n  input k: f32[N, 4]\n  input v: f32[N, D]"]) {
      const g = compileSource(`model M { dim N, D\n  ${width}\n  output y = softmax(q @ transpose(k)) @ v }`);
      expect(ops(runPipeline(g, DEFAULT_PIPELINE, { log: () => {} }))).not.toContain("flash_attention");
    }
    // q k^T / 1e-40 overflows f32 and the softmax gives NaN; attention with scale 1e40 would not.
    const g = compileSource("model M { dim N\n  input q: f32[N, 4]\n  output y = softmax(q @ transpose(q) / 1e-40) @ q }");
    expect(ops(recognizeAttentionPass.run(g))).not.toContain("attention");
  });

  it("runs hand-written differential attention from a .dt file as one flash_diffattn on every backend", async () => {
    const g = compileSource(handWritten(dual({})));
    const fused = runPipeline(g, DEFAULT_PIPELINE, { log: () => {} });
    expect(ops(fused).filter((op) => !["input", "const"].includes(op))).toEqual(["concat", "concat", "flash_diffattn", "reshape"]);
    const dims = new Map([["N", 7]]);
    const inputs = randomInputs(g, dims, 3);
    expectCloseOutputs(g, fused, inputs, dims);
    for (const backend of BACKENDS) await runAndCompare(backend, fused, inputs, new Map(), dims);
  });

  // Each near miss computes something a diffattn does not; the pass must leave it as written.
  const NEAR_MISSES: [string, string, string?][] = [
    ["λ applied before the softmax", dual({ p2: "0.5 * (q2 @ transpose(k2) * s)", combined: "p1 - p2" })],
    ["a softmax over the wrong axis (the queries)", dual({ axis: ", axis = -2" })],
    ["different scales for the two maps", dual({ scale2: "0.25" })],
    ["a different K source: the second map over other keys (one key, broadcast)", dual({ k2: "kx" }), "input kx: f32[H, 1, d]"],
    ["a different K source: the second map's keys from another batch layout", dual({ k2: "kx" }), "input kx: f32[N, d]"],
    ["λ that varies along the keys", dual({ combined: "p1 - lam * p2" }), "input lam: f32[N]"],
    ["a map that is also read elsewhere (fusing would compute it twice)", dual({ extra: "output map = p1" })],
    ["values not 2d wide", dual({ v: "vx" }), "input vx: f32[H, N, 3]"],
    ["p1 + λ p2 instead of p1 - λ p2", dual({ combined: "p1 + 0.5 * p2" })],
    // (λ p1 - p2) v is -(p2 - λ p1) v: λ weighs the wrong map, and the sign is flipped.
    ["λ on the first map: (λ p1 - p2) @ v", dual({ combined: "0.5 * p1 - p2" })],
    ["λ on the first map, per query: (λ p1 - p2) @ v with λ [N, 1]", dual({ combined: "lam * p1 - p2" }), "input lam: f32[N, 1]"],
  ];
  for (const [name, body, extra] of NEAR_MISSES) {
    it(`leaves a near miss alone: ${name}`, () => {
      const g = compileSource(handWritten(body, extra));
      for (const pass of [recognizeAttentionPass, fuseDualSoftmaxPass]) {
        const out = pass.run(g);
        expect(ops(out)).not.toContain("diffattn");
        expect(ops(out)).not.toContain("flash_diffattn");
      }
    });
  }

  it("the near misses are one step from a match: the matching form fuses", () => {
    expect(ops(fuseDualSoftmaxPass.run(compileSource(handWritten(dual({})))))).toContain("flash_diffattn");
    // λ per query ([N, 1]) is diffattn's λ [N, H] with H = 1.
    const perQuery = dual({ combined: "p1 - lam * p2" });
    expect(ops(fuseDualSoftmaxPass.run(compileSource(handWritten(perQuery, "input lam: f32[N, 1]"))))).toContain("flash_diffattn");
    // The scale on q, as the official code writes it, is the same attention.
    const qScaled = handWritten(`let p1 = softmax((q1 * s) @ transpose(k1))
  let p2 = softmax((q2 * s) @ transpose(k2))
  output y = (p1 - 0.5 * p2) @ v`);
    const g = compileSource(qScaled);
    const fused = fuseDualSoftmaxPass.run(g);
    expect(ops(fused)).toContain("flash_diffattn");
    const dims = new Map([["N", 5]]);
    expectCloseOutputs(g, fused, randomInputs(g, dims, 9), dims);
    // A scale on q of one map only is two scales.
    const oneScaled = handWritten(`let p1 = softmax((q1 * s) @ transpose(k1))
  let p2 = softmax(q2 @ transpose(k2))
  output y = (p1 - 0.5 * p2) @ v`);
    expect(ops(fuseDualSoftmaxPass.run(compileSource(oneScaled)))).not.toContain("flash_diffattn");
  });

  it("recognises every attention and diffattn decomposition again (round trip through decompose)", () => {
    const config = fc.record({
      kvHeads: fc.constantFrom(1, 2),
      group: fc.constantFrom(1, 2),
      d: fc.constantFrom(2, 4),
      batch: fc.constantFrom([], [2]),
      keys: fc.constantFrom<(number | string)[]>(["N"], [3], [5]),
      causal: fc.boolean(),
      pairing: fc.constantFrom("stripe", "halves"),
      lambda: fc.constantFrom("0.5", "lam"),
      diff: fc.boolean(),
      scale: fc.constantFrom(0, 0.3),
    });
    fc.assert(
      fc.property(config, (c) => {
        const heads = c.kvHeads * c.group;
        const maps = c.diff ? 2 : 1;
        const b = c.batch.map((x) => `${x}, `).join("");
        const m = c.keys[0];
        const dv = c.diff ? 2 * c.d : 3;
        const call = c.diff
          ? `diffattn(q, k, v, ${c.lambda}, heads = ${heads}, kv_heads = ${c.kvHeads}, causal = ${c.causal}, scale = ${c.scale}, pairing = "${c.pairing}")`
          : `attention(q, k, v, heads = ${heads}, kv_heads = ${c.kvHeads}, causal = ${c.causal}, scale = ${c.scale})`;
        const g = compileSource(`model M { dim N
  input q: f32[${b}N, ${maps * heads * c.d}]
  input k: f32[${b}${m}, ${maps * c.kvHeads * c.d}]
  input v: f32[${b}${m}, ${c.kvHeads * dv}]
  input lam: f32[N, ${heads}]
  output y = ${call} }`);
        const primitive = runPipeline(decompose(g), DEFAULT_PIPELINE.slice(0, 5), { log: () => {} });
        expect(ops(primitive)).toContain("softmax");
        const fused = fuseAttentionPass.run(fuseDualSoftmaxPass.run(primitive));
        verifyGraph(fused);
        expect(ops(fused)).not.toContain("softmax");
        expect(ops(fused)).toContain(c.diff ? "flash_diffattn" : "flash_attention");
        const dims = new Map([["N", 4]]);
        expectCloseOutputs(g, fused, randomInputs(g, dims, 5), dims);
      }),
      { numRuns: 40 },
    );
  });

  const FUSIONS: Pass[] = [recognizeAttentionPass, fuseDualSoftmaxPass, fuseAttentionPass];
  for (const pass of FUSIONS) {
    it(`${pass.name}: random graphs with attention, hand-written and flawed, keep their outputs`, () => checkWithinTolerance(pass));
  }

  it("random graphs give the recognition something to do (the properties above are not vacuous)", () => {
    const graphs = fc.sample(arbitraryGraphCase({ dims: true, attention: true, continuous: true }), { numRuns: 1000, seed: 11 });
    const fired = (op: string) => graphs.filter(({ graph }) => !ops(graph).includes(op) && ops(recognizeAttentionPass.run(graph)).includes(op)).length;
    expect(fired("diffattn")).toBeGreaterThan(5);
    expect(fired("attention")).toBeGreaterThan(5);
  });
});

describe("recognized attention in models", () => {
  it("examples/diff_attention_by_hand.dt runs as one flash_diffattn on the split projections, with its results", async () => {
    const file = "examples/diff_attention_by_hand.dt";
    const g = compileSource(readFileSync(file, "utf8"), { set: new Map([["D", 32]]) }, file);
    const fused = runPipeline(g, DEFAULT_PIPELINE, { log: () => {} });
    // q1 | q2 and k1 | k2 are the halves split(q, 2) made: the kernel reads q and k themselves;
    // the RMSNorm and scale after it are its epilogue.
    expect(ops(fused).filter((op) => ["softmax", "concat", "slice", "rmsnorm", "fused", "flash_diffattn"].includes(op))).toEqual(["flash_diffattn"]);
    const flash = fused.nodes.find((n) => n.op === "flash_diffattn")!;
    expect(flash.operands).toHaveLength(5);
    expect(flash.attrs.out_scale).toBeCloseTo(0.2, 6);
    const dims = new Map([["N", 6]]);
    const weights = testWeights(g, 2);
    const inputs = randomInputs(g, dims, 2);
    expectCloseOutputs(g, fused, inputs, dims, weights);
    for (const backend of BACKENDS) await runAndCompare(backend, fused, inputs, weights, dims);
  });
});
