/** The exports of an attention module (backends/js/attention-wasm.ts). */
export interface AttentionExports {
  memory: WebAssembly.Memory;
  scores(qt: number, k: number, out: number, n: number, scale: number): void;
  weighted(w: number, v: number, acc: number, n: number, keys: number): void;
  softmax(pr: number, n: number, blockMax: number, rowMax: number, rowSum: number): void;
  combine(pr0: number, pr1: number, n: number, weights: number, block: number): void;
  quantize?(pr: number, n: number, stops: number, maxes: number, levels: number, lo: number, apply: number): void;
}

/** `variants`: a module's bytes, the most capable first; `elementBytes`: 8 for a float64 module, 4 for a float32 one (which has no `quantize`). */
export function attentionSimd(variants: Uint8Array<ArrayBuffer>[], elementBytes: number): (floats: number) => AttentionExports;
