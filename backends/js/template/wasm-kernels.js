// ---- the loader of the kernels compiled to WebAssembly (backends/js/wasm-kernel.ts) -------
// Copied into every JS artifact that has such kernels (without `export` and the import), and
// imported as a module by the tests.
import { reserve, validModule } from "./wasm-instance.js";

/**
 * The artifact's module of compiled kernels (`bytes`), instantiated on first use. `call` runs
 * kernel `name` on typed arrays: each is copied into the module's memory (the output only where
 * the kernel reads it, `readsOut`), the kernel runs on their byte offsets, its `scalars` (dims)
 * and, with `errors` (the runtime's error record), one of its own, and the output and the error
 * record are copied back.
 */
export function wasmKernelModule(bytes) {
  let exports;
  return {
    call(name, readsOut, buffers, scalars, errors) {
      exports ??= new WebAssembly.Instance(validModule([bytes]).module).exports;
      const at = [];
      let size = 0;
      for (const b of buffers) {
        at.push(size);
        size += Math.ceil(b.byteLength / 16) * 16; // not (n + 15) & -16: past 2 GiB, that is negative
      }
      const errorsAt = size;
      if (errors) size += 16;
      const heap = new Uint8Array(reserve(exports.memory, size, `kernel ${name}`));
      for (let i = readsOut ? 0 : 1; i < buffers.length; i++) heap.set(new Uint8Array(buffers[i].buffer, buffers[i].byteOffset, buffers[i].byteLength), at[i]);
      if (errors) heap.fill(0, errorsAt, errorsAt + 16);
      exports[name](...at, ...scalars, ...(errors ? [errorsAt] : []));
      const out = buffers[0];
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(heap.subarray(at[0], at[0] + out.byteLength));
      if (errors) errors.set(new Int32Array(exports.memory.buffer, errorsAt, 4));
    },
  };
}
