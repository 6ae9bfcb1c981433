// ---- the loader of the streaming attention kernels' WebAssembly modules -----------------
// Copied into every JS artifact whose attention kernels use it (without `export`), and
// imported as a module by the tests. Self-contained: imports nothing.

/**
 * A function of a module's variants (their bytes, the most capable first: relaxed SIMD, then
 * plain SIMD) that instantiates the first this engine validates on first use and returns its
 * exports with memory for at least `floats` elements of `elementBytes` bytes (8 for float64, 4
 * for float32).
 */
export function attentionSimd(variants, elementBytes) {
  let exports;
  return (floats) => {
    // The wasm loops address memory with i32 byte offsets.
    if (floats * elementBytes > 2 ** 31 - 1) throw new RangeError(`attention kernel: ${floats * elementBytes} bytes of scratch is more than the 2 GiB its wasm loops address (too many keys)`);
    exports ??= new WebAssembly.Instance(new WebAssembly.Module(variants.find((bytes) => WebAssembly.validate(bytes)) ?? variants[variants.length - 1])).exports;
    const short = floats * elementBytes - exports.memory.buffer.byteLength;
    if (short > 0) exports.memory.grow(Math.ceil(short / 65536));
    return exports;
  };
}
