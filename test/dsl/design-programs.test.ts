// The programs of DESIGN.md section 2, verbatim: they must parse, elaborate and run unchanged.
import { describe, expect, it } from "vitest";
import { parseProgram } from "../../dsl/parse.ts";
import { elaborate } from "../../compiler/elaborate/index.ts";
import { nodeName, paramNodes } from "../../compiler/ir/graph.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";

const DESIGN_PROGRAMS = `# One multi-head differential attention layer (Ye et al. 2024, eq. 1-3).
model DiffAttention(D = 512, H = 4, Hkv = H, layer = 0) {
  dim N                                   # sequence length, bound at run time
  let d = D / H / 2                       # half head width: q1, q2, k1, k2 are d wide, v is 2d
  let lambda_init = 0.8 - 0.6 * exp(-0.3 * layer)

  input x: f32[N, D]
  sub q_proj = Linear(D, D)
  sub k_proj = Linear(D, D * Hkv / H)
  sub v_proj = Linear(D, D * Hkv / H)
  sub out_proj = Linear(D, D)
  param lambda_q1: f32[d]
  param lambda_k1: f32[d]
  param lambda_q2: f32[d]
  param lambda_k2: f32[d]
  sub subln = RMSNorm(2 * d, eps = 1e-5)

  let lam = exp(sum(lambda_q1 * lambda_k1)) - exp(sum(lambda_q2 * lambda_k2)) + lambda_init
  let a = diffattn(q_proj(x), k_proj(x), v_proj(x), lam, heads = H, kv_heads = Hkv, causal = true)
  output y = out_proj(reshape(subln(a) * (1 - lambda_init), [N, D]))
}

model Linear(IN, OUT) {
  input x: f32[..., IN]                   # any leading dims
  param weight: f32[OUT, IN]              # PyTorch layout: y = x @ weight^T
  output y = x @ transpose(weight)
}

model DiffLM(V = 256, D = 256, H = 4, L = 4) {
  dim N
  input tokens: i32[N]
  param embed: f32[V, D]
  sub layers[l in 0..L] = Block(D = D, H = H, layer = l)
  sub norm = RMSNorm(D)
  let x = embed[tokens]
  for l in 0..L { x = layers[l](x) }
  output logits = norm(x) @ transpose(embed)
}
`;

describe("the DESIGN.md section 2 programs", () => {
  const program = parseProgram(DESIGN_PROGRAMS, "design.dt");

  it("parse into three models", () => {
    expect(program.models.map((m) => m.name.name)).toEqual(["DiffAttention", "Linear", "DiffLM"]);
  });

  it("default to DiffLM, the last model no other model uses", () => {
    expect(elaborate(program, { set: new Map([["L", 1]]) }).model.name.name).toBe("DiffLM");
  });

  it("DiffAttention elaborates with PyTorch-style param names and runs", () => {
    const { graph } = elaborate(program, { model: "DiffAttention", set: new Map([["D", 64], ["H", 2]]) });
    expect(paramNodes(graph).map(nodeName).sort()).toEqual(
      ["k_proj.weight", "lambda_k1", "lambda_k2", "lambda_q1", "lambda_q2", "out_proj.weight", "q_proj.weight", "subln.weight", "v_proj.weight"],
    );
    const dims = new Map([["N", 5]]);
    const y = evaluate(graph, randomInputs(graph, dims, 1), initWeights(graph, 1), { dims }).get("y")!;
    expect(y.shape).toEqual([5, 64]);
    expect(y.data.every(Number.isFinite)).toBe(true);
  });

  it("DiffLM (Block and RMSNorm from the standard library) runs end to end", () => {
    const { graph } = elaborate(program, { set: new Map([["L", 2], ["D", 32], ["V", 50]]) });
    expect(paramNodes(graph).map(nodeName)).toContain("layers.1.attn.subln.weight");
    const dims = new Map([["N", 7]]);
    const logits = evaluate(graph, randomInputs(graph, dims, 2), initWeights(graph, 2), { dims }).get("logits")!;
    expect(logits.shape).toEqual([7, 50]);
    expect(logits.data.every(Number.isFinite)).toBe(true);
  });
});
