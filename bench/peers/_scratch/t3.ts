import { readFileSync } from "node:fs";
import { elaborate } from "../../../compiler/elaborate/index.ts";
import { parseProgram } from "../../../dsl/parse.ts";
import { evaluate } from "../../../runtime/interpreter/index.ts";
import { initWeights, randomInputs } from "../../../runtime/init.ts";
import { createOnnxRunner } from "../onnx.ts";

const cases: [string, Record<string, number>][] = [
  ["examples/diff_attention.dt", { D: 64, H: 2 }],
  ["examples/diff_attention_v2.dt", { D: 64 }],
  ["examples/transformer_lm.dt", { V: 32, D: 32, H: 2, L: 1 }],
  ["examples/diff_lm.dt", { V: 32, D: 32, H: 2, L: 1 }],
];
for (const [file, set] of cases) {
  const t0 = performance.now();
  const graph = elaborate(parseProgram(readFileSync(file, "utf8"), file), { set: new Map(Object.entries(set)) }).graph;
  const dims = new Map([["N", 8]]);
  const params = initWeights(graph, 1);
  const inputs = randomInputs(graph, dims, 2);
  const ref = evaluate(graph, inputs, params, { dims });
  const runner = await createOnnxRunner(graph, params, dims);
  const got = await runner.run(inputs);
  for (const [k, v] of ref) {
    const o = got.get(k)!;
    let err = 0, mx = 0;
    for (let i = 0; i < v.data.length; i++) { err = Math.max(err, Math.abs(v.data[i] - o.data[i])); mx = Math.max(mx, Math.abs(v.data[i])); }
    console.log(file, k, v.shape, o.shape, err, mx, (performance.now() - t0).toFixed(0) + "ms", new Set(graph.nodes.map(n=>n.op)));
  }
  await runner.release();
}
