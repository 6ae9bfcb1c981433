// The compute shader the WebGPU smoke tests run (in Node and in Chromium), and its answer.

/** Elements the smoke shader runs over. */
export const SMOKE_N = 1000;

/** y[i] = x[i] * 2 + i. */
export const SMOKE_SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < arrayLength(&y)) { y[i] = x[i] * 2.0 + f32(i); }
}`;

/** What the smoke shader gives for x, in f32. */
export const smokeExpected = (x: ArrayLike<number>): number[] => Array.from(Float32Array.from(x, (v, i) => v * 2 + i));
