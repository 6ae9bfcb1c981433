export function validModule(variants: Uint8Array<ArrayBuffer>[]): { variant: number; module: WebAssembly.Module };
export function reserve(memory: WebAssembly.Memory, bytes: number, what: string): ArrayBuffer;
