// ---- the loader of the f32 matmul's WebAssembly module ----------------------------------
// Copied into every JS artifact whose matmuls use it (without `export` and the import), and
// imported as a module by the tests.
import { reserve, validModule } from "./wasm-instance.js";

/**
 * The instances of a matmul module (backends/js/matmul-wasm.ts), each with its own memory, of
 * the first of its `variants` (their bytes, the most capable first: relaxed SIMD, then plain
 * SIMD) that this engine validates; `variant` says which.
 * `packed(b, layout, floats, pack)` is the one that holds b packed in `layout` (its first
 * `floats` floats, written by `pack` on first use), one per param array and layout, reused by
 * every later run of the session (a session passes its kernels the same param arrays on every
 * run) and collected with the array; `scratch()` is the one the kernels share for a b packed on
 * every call. Each instance has `matmul` and `memory(floats)`: a Float32Array over its memory,
 * grown to at least that many floats.
 */
export function matmulSimd(variants) {
  const { variant, module } = validModule(variants);
  const held = new WeakMap();
  let scratch;
  const instance = () => {
    const exports = new WebAssembly.Instance(module).exports;
    return {
      matmul: exports.matmul,
      memory: (floats) => new Float32Array(reserve(exports.memory, floats * 4, "matmul kernel"), 0, floats),
    };
  };
  return {
    variant,
    packed(b, layout, floats, pack) {
      let layouts = held.get(b);
      if (!layouts) held.set(b, (layouts = new Map()));
      let packed = layouts.get(layout);
      if (!packed) {
        packed = instance();
        pack(packed.memory(floats));
        layouts.set(layout, packed);
      }
      return packed;
    },
    scratch: () => (scratch ??= instance()),
  };
}
