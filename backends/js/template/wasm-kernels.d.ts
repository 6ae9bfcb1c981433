/** The module of an artifact's kernels compiled to WebAssembly (backends/js/wasm-kernel.ts). */
export function wasmKernelModule(bytes: Uint8Array<ArrayBuffer>): {
  /**
   * Runs kernel `name` on `buffers` (the output first), its dims and, where it can fail, the
   * error record; the buffers at the indices `params` are session params, copied once.
   */
  call(name: string, readsOut: boolean, buffers: ArrayBufferView[], scalars: number[], errors?: Int32Array | null, params?: number[]): void;
};
