import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
await tf.setBackend("wasm"); await tf.ready();
console.log(tf.env().getAsync ? await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") : "", await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT"));
const q = tf.randomNormal([16, 1024, 64]);
const k = tf.randomNormal([16, 1024, 64]);
const mask = tf.randomNormal([1024, 1024]);
for (let i = 0; i < 2; i++) {
  const info = await tf.profile(() => {
    const s = tf.mul(tf.matMul(q, k, false, true), 0.125);
    const m = tf.add(s, mask);
    const p = tf.softmax(m);
    return p;
  });
  console.log(info.kernels.map(k => [k.name, k.kernelTimeMs]));
}
for (let i = 0; i < 2; i++) {
  let t = performance.now();
  const r = tf.matMul(q, k, false, true); await r.data(); console.log("matmul", performance.now() - t);
  t = performance.now();
  const r2 = tf.softmax(r); await r2.data(); console.log("softmax", performance.now() - t);
  t = performance.now();
  const r3 = tf.add(r, mask); await r3.data(); console.log("add", performance.now() - t);
  tf.dispose([r, r2, r3]);
}
