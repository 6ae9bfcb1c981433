// ---- the loader of the kernels compiled to WebAssembly (backends/js/wasm-kernel.ts) -------
// Copied into every JS artifact that has such kernels (without `export` and the import), and
// imported as a module by the tests.
import { reserve, validModule } from "./wasm-instance.js";

/**
 * The artifact's module of compiled kernels (`bytes`), instantiated on first use. `call` runs
 * kernel `name` on typed arrays: each is copied into an instance's memory (the output only
 * where the kernel reads it, `readsOut`), the kernel runs on their byte offsets, its `scalars`
 * (dims) and, with `errors` (the runtime's error record), one of its own, and the output and
 * the error record are copied back. The buffers at the indices `params` are a session's params,
 * the same arrays on every run: they are copied once, into the bottom of the memory of an
 * instance of their own (one per first param array, collected with it), as the matmul keeps
 * its packed weights; a kernel without params runs in one shared instance.
 */
export function wasmKernelModule(bytes) {
  let module;
  let shared;
  const holders = new WeakMap();
  const instance = () => {
    module ??= validModule([bytes]).module;
    return { exports: new WebAssembly.Instance(module).exports, params: new Map(), top: 0 };
  };
  // Sizes rounded up to 16 bytes by division: (n + 15) & -16 is negative past 2 GiB.
  const padded = (bytes) => Math.ceil(bytes / 16) * 16;
  const bytesOf = (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return {
    call(name, readsOut, buffers, scalars, errors, params = []) {
      let held;
      if (params.length) {
        held = holders.get(buffers[params[0]]);
        if (!held) holders.set(buffers[params[0]], (held = instance()));
      } else held = shared ??= instance();
      const { exports } = held;
      const at = new Array(buffers.length);
      for (const i of params) {
        let offset = held.params.get(buffers[i]);
        if (offset === undefined) {
          offset = held.top;
          held.top += padded(buffers[i].byteLength);
          new Uint8Array(reserve(exports.memory, held.top, `kernel ${name}`)).set(bytesOf(buffers[i]), offset);
          held.params.set(buffers[i], offset);
        }
        at[i] = offset;
      }
      let size = held.top;
      for (let i = 0; i < buffers.length; i++)
        if (at[i] === undefined) {
          at[i] = size;
          size += padded(buffers[i].byteLength);
        }
      const errorsAt = size;
      if (errors) size += 16;
      const heap = new Uint8Array(reserve(exports.memory, size, `kernel ${name}`));
      for (let i = readsOut ? 0 : 1; i < buffers.length; i++) if (!params.includes(i)) heap.set(bytesOf(buffers[i]), at[i]);
      if (errors) heap.fill(0, errorsAt, errorsAt + 16);
      exports[name](...at, ...scalars, ...(errors ? [errorsAt] : []));
      bytesOf(buffers[0]).set(heap.subarray(at[0], at[0] + buffers[0].byteLength));
      if (errors) errors.set(new Int32Array(exports.memory.buffer, errorsAt, 4));
    },
  };
}
