/** One instance of a matmul module (backends/js/matmul-wasm.ts) with its memory. */
export interface MatmulInstance {
  matmul(a: number, b: number, c: number, rows: number, k: number, panels: number): void;
  /** A Float32Array over its memory, grown to at least `floats` floats. */
  memory(floats: number): Float32Array;
}

/** The module `fmaBytes` (relaxed SIMD) where the engine validates it, else `bytes`. */
export function matmulSimd(bytes: Uint8Array<ArrayBuffer>, fmaBytes?: Uint8Array<ArrayBuffer>): {
  /** Whether the instances run `fmaBytes`. */
  fused: boolean;
  packed(b: ArrayBufferView, layout: string, floats: number, pack: (F: Float32Array) => void): MatmulInstance;
  scratch(): MatmulInstance;
};
