// The compute shader the WebGPU smoke tests run (in Node and in Chromium), and its answer; and
// devices that hide limits or features, to run the variants a smaller device would get.

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

/** The device as it is, with the properties in `overrides` (limits, features, adapterInfo) replaced. */
export function deviceWith(device: GPUDevice, overrides: Record<string, unknown>): GPUDevice {
  return new Proxy(device, {
    get: (target, key) => {
      if (typeof key === "string" && key in overrides) return overrides[key];
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * The device as it is, with `features` narrowed to `keep` (which may also name
 * `subgroup-min-size-8`): the loader then picks the kernel variants those allow.
 */
export const withFeatures = (device: GPUDevice, keep: string[]): GPUDevice =>
  deviceWith(device, {
    features: new Set([...device.features].filter((f) => keep.includes(f))),
    // Subgroups of at least 8 lanes only where that variant is kept.
    adapterInfo: { subgroupMinSize: keep.includes("subgroup-min-size-8") ? device.adapterInfo.subgroupMinSize : 4 },
  });
