import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
await tf.setBackend("wasm"); await tf.ready();
const q = tf.randomNormal([1024, 64]);
const k = tf.randomNormal([1024, 64]);
const kt = tf.transpose(k);
const q3 = tf.randomNormal([1, 1024, 64]);
const kt3 = tf.randomNormal([1, 64, 1024]);
for (let i = 0; i < 3; i++) {
  let t = performance.now();
  let r = tf.matMul(q, kt); await r.data(); console.log("2d q @ kt", (performance.now() - t).toFixed(1)); r.dispose();
  t = performance.now();
  r = tf.matMul(q, k, false, true); await r.data(); console.log("2d q @ k^T", (performance.now() - t).toFixed(1)); r.dispose();
  t = performance.now();
  r = tf.matMul(q3, kt3); await r.data(); console.log("3d batch1", (performance.now() - t).toFixed(1)); r.dispose();
  t = performance.now();
  const fm = tf.fused.matMul({ a: q, b: k, transposeB: true }); await fm.data(); console.log("fused 2d", (performance.now() - t).toFixed(1)); fm.dispose();
}
