// ---- the loader of the streaming attention kernels' WebAssembly modules -----------------
// Copied into every JS artifact whose attention kernels use it (without `export` and the
// import), and imported as a module by the tests.
import { reserve, validModule } from "./wasm-instance.js";

/**
 * A function of a module's variants (their bytes, the most capable first: relaxed SIMD, then
 * plain SIMD) that instantiates the first this engine validates on first use and returns its
 * exports with memory for at least `floats` elements of `elementBytes` bytes (8 for float64, 4
 * for float32).
 */
export function attentionSimd(variants, elementBytes) {
  let exports;
  return (floats) => {
    exports ??= new WebAssembly.Instance(validModule(variants).module).exports;
    reserve(exports.memory, floats * elementBytes, "attention kernel (too many keys)");
    return exports;
  };
}
