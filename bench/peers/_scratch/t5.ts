import { readFileSync } from "node:fs";
import { elaborate } from "../../../compiler/elaborate/index.ts";
import { parseProgram } from "../../../dsl/parse.ts";
import { evaluate } from "../../../runtime/interpreter/index.ts";
import { initWeights, randomInputs } from "../../../runtime/init.ts";
import { createOnnxRunner } from "../onnx.ts";
import { printGraph } from "../../../compiler/ir/print.ts";

const file = "examples/diff_attention.dt";
const graph = elaborate(parseProgram(readFileSync(file, "utf8"), file), { set: new Map(Object.entries({ D: 64, H: 2 })) }).graph;
graph.outputs = graph.nodes.filter(n => n.op !== "input" && n.op !== "param").map(n => ({ name: "o" + n.id, node: n.id }));
const dims = new Map([["N", 8]]);
const params = initWeights(graph, 1);
const inputs = randomInputs(graph, dims, 2);
const ref = evaluate(graph, inputs, params, { dims });
const runner = await createOnnxRunner(graph, params, dims);
const got = await runner.run(inputs);
for (const [k, v] of ref) {
  const o = got.get(k)!;
  let err = 0;
  for (let i = 0; i < v.data.length; i++) err = Math.max(err, Math.abs(v.data[i] - o.data[i]));
  const n = graph.nodes[+k.slice(1)];
  console.log(k, n.op, JSON.stringify(n.attrs), n.operands, v.shape, err);
}
