// Dual-softmax fusion: diffattn with its RMSNorm-and-scale epilogue becomes one flash_diffattn.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { fuseDualSoftmax } from "../../compiler/passes/fuse-dual-softmax.ts";
import { fuseAttentionPass } from "../../compiler/passes/fuse-attention.ts";
import { randomInputs } from "../../runtime/init.ts";
import { testWeights } from "../support/weights.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource } from "../support/dsl.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";

const canonical = (text: string) => printGraph(parseGraph(text));

describe("fuse-dual-softmax", () => {
  it("takes a sole-reader rmsnorm and a constant scale as the epilogue", () => {
    const before = `graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = input {name = "k"} : f32[N, 8]
  %2 = input {name = "v"} : f32[N, 8]
  %3 = const {value = 0.5} : f32[]
  %4 = diffattn(%0, %1, %2, %3) {heads = 2, kv_heads = 2, causal = true} : f32[N, 2, 4]
  %5 = param {name = "w", init = "constant", init_args = [1]} : f32[4]
  %6 = rmsnorm(%4, %5) : f32[N, 2, 4]
  %7 = const {value = 0.25} : f32[]
  %8 = mul(%6, %7) : f32[N, 2, 4]
  output "y" = %8
}`;
    const after = `graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = input {name = "k"} : f32[N, 8]
  %2 = input {name = "v"} : f32[N, 8]
  %3 = const {value = 0.5} : f32[]
  %4 = param {name = "w", init = "constant", init_args = [1]} : f32[4]
  %5 = const {value = 0.25} : f32[]
  %6 = flash_diffattn(%0, %1, %2, %3, %4) {heads = 2, kv_heads = 2, causal = true, out_scale = 0.25} : f32[N, 2, 4]
  output "y" = %6
}`;
    expect(printGraph(fuseDualSoftmax(parseGraph(before)))).toBe(canonical(after));
  });

  it("leaves the rmsnorm alone when the attention result has another reader (near miss)", () => {
    const g = compileSource(`model M { dim N
  input q: f32[N, 8]
  input w: f32[4]
  let a = diffattn(q, q, q, 0.5, heads = 2)
  output y = rmsnorm(a, w)
  output raw = a }`);
    const ops = fuseDualSoftmax(g).nodes.map((n) => n.op);
    expect(ops).toContain("rmsnorm");
    expect(ops).toContain("flash_diffattn");
  });

  it("keeps DiffAttention's results (interpreter) and runs on every backend", async () => {
    const src = readFileSync(new URL("../../examples/diff_attention.dt", import.meta.url), "utf8");
    const g = compileSource(src, { set: new Map([["D", 64], ["H", 2]]) });
    const fused = fuseDualSoftmax(g);
    expect(fused.nodes.filter((n) => n.op === "flash_diffattn")).toHaveLength(1);
    expect(fused.nodes.some((n) => n.op === "rmsnorm" || n.op === "diffattn")).toBe(false);
    const dims = new Map([["N", 9]]);
    const inputs = randomInputs(g, dims, 4);
    const weights = testWeights(g, 4);
    const a = evaluate(g, inputs, weights, { dims }).get("y")!;
    const b = evaluate(fused, inputs, weights, { dims }).get("y")!;
    for (let i = 0; i < a.data.length; i++) expect(Math.abs(a.data[i] - b.data[i])).toBeLessThan(1e-6 * (1 + Math.abs(a.data[i])));
    for (const backend of BACKENDS) await runAndCompare(backend, fused, inputs, weights, dims);
  });

  it("fuse-attention turns attention into flash_attention", () => {
    const g = compileSource("model M { dim N\n input q: f32[N, 8]\n output y = attention(q, q, q, heads = 2, causal = true) }");
    expect(fuseAttentionPass.run(g).nodes.map((n) => n.op)).toEqual(["input", "flash_attention"]);
  });
});
