/** One instance of a matmul module (backends/js/matmul-wasm.ts) with its memory. */
export interface MatmulInstance {
  matmul(a: number, b: number, c: number, rows: number, k: number, panels: number): void;
  /** A Float32Array over its memory, grown to at least `floats` floats. */
  memory(floats: number): Float32Array;
}

/** Instances of the first of `variants` (the most capable first) that the engine validates. */
export function matmulSimd(variants: Uint8Array<ArrayBuffer>[]): {
  /** The index in `variants` of the module the instances run. */
  variant: number;
  packed(b: ArrayBufferView, layout: string, floats: number, pack: (F: Float32Array) => void): MatmulInstance;
  scratch(): MatmulInstance;
};
