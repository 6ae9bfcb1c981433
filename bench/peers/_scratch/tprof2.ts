import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
await tf.setBackend("wasm"); await tf.ready();
const q = tf.randomNormal([16, 1024, 64]);
const k = tf.randomNormal([16, 1024, 64]);
const kt = tf.transpose(k, [0, 2, 1]);
const p = tf.randomNormal([8, 1024, 1024]);
const v = tf.randomNormal([8, 1024, 128]);
for (let i = 0; i < 3; i++) {
  let t = performance.now();
  let r = tf.matMul(q, k, false, true); await r.data(); console.log("qk^T transposeB", (performance.now() - t).toFixed(0)); r.dispose();
  t = performance.now();
  r = tf.matMul(q, kt); await r.data(); console.log("q @ kt", (performance.now() - t).toFixed(0)); r.dispose();
  t = performance.now();
  r = tf.matMul(q, tf.transpose(k, [0, 2, 1])); await r.data(); console.log("q @ transpose(k)", (performance.now() - t).toFixed(0)); r.dispose();
  t = performance.now();
  r = tf.matMul(p, v); await r.data(); console.log("p @ v", (performance.now() - t).toFixed(0)); r.dispose();
}
