// ---- what every loader of the JS backend's WebAssembly modules shares -------------------
// Copied into every JS artifact that carries a loader (without `export`), and imported by the
// loaders as modules in the tests. Self-contained: imports nothing.

/**
 * The compiled module of the first of `variants` (a module's bytes, the most capable first:
 * relaxed SIMD, then plain SIMD) that this engine validates, and `variant`, its index.
 */
export function validModule(variants) {
  const found = variants.findIndex((bytes) => WebAssembly.validate(bytes));
  const variant = found < 0 ? variants.length - 1 : found;
  return { variant, module: new WebAssembly.Module(variants[variant]) };
}

/**
 * `memory` grown to at least `bytes` (what `what` needs; the wasm code addresses it with i32
 * byte offsets, so at most 2 GiB); returns its buffer.
 */
export function reserve(memory, bytes, what) {
  if (bytes > 2 ** 31 - 1) throw new RangeError(`${what}: ${bytes} bytes of scratch is more than the 2 GiB its wasm code addresses`);
  const short = bytes - memory.buffer.byteLength;
  if (short > 0) memory.grow(Math.ceil(short / 65536));
  return memory.buffer;
}
