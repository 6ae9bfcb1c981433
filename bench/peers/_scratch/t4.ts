import { GraphBuilder } from "../../../compiler/ir/builder.ts";
import { evaluate } from "../../../runtime/interpreter/index.ts";
import { randomInputs } from "../../../runtime/init.ts";
import { createOnnxRunner } from "../onnx.ts";
import { exportOnnx } from "../onnx/export.ts";

for (const [H, Hkv, causal, pairing, lamShape] of [[1, 1, false, "stripe", []], [1, 1, true, "stripe", []], [2, 1, false, "stripe", []], [2,2,false,"halves",[2]], [4,2,true,"halves",["N",4]]] as const) {
  const b = new GraphBuilder("t");
  b.dim("N");
  const d = 2;
  const q = b.add("input", [], { name: "q", dtype: "f32", shape: ["N", 2 * H * d] });
  const k = b.add("input", [], { name: "k", dtype: "f32", shape: ["N", 2 * Hkv * d] });
  const v = b.add("input", [], { name: "v", dtype: "f32", shape: ["N", 2 * Hkv * d] });
  const l = b.add("input", [], { name: "l", dtype: "f32", shape: [...lamShape] });
  b.output("y", b.add("diffattn", [q, k, v, l], { heads: H, kv_heads: Hkv, causal, pairing }));
  const graph = b.finish();
  const dims = new Map([["N", 3]]);
  const inputs = randomInputs(graph, dims, 2);
  const ref = evaluate(graph, inputs, new Map(), { dims });
  const runner = await createOnnxRunner(graph, new Map(), dims);
  const got = await runner.run(inputs);
  const r = ref.get("y")!, o = got.get("y")!;
  let err = 0;
  for (let i = 0; i < r.data.length; i++) err = Math.max(err, Math.abs(r.data[i] - o.data[i]));
  console.log(H, Hkv, causal, pairing, err);
  if (err > 1e-5) { console.log(Array.from(r.data).slice(0, 8), Array.from(o.data).slice(0, 8)); console.log(exportOnnx(graph, new Map(), dims).nodes.map(n => `${n.outputs} = ${n.opType}(${n.inputs}) ${JSON.stringify(n.attrs ?? {})}`).join("\n")); }
}
