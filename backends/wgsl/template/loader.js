// ---- the WebGPU loader: the part of every WGSL artifact that is not generated ----------
// Expects MANIFEST, SHADERS (per kernel in launch order, its variants: { requires: [features], code },
// the most demanding first, the last requiring nothing), WORKGROUP_SIZE and the
// shared artifact runtime above. Runs wherever navigator.gpu exists (a browser, Node with the
// `webgpu` package), or on a GPUDevice the caller passes. Self-contained: imports nothing.

// GPUBufferUsage flags (WebGPU spec values), so that the module needs no globals.
const STORAGE = 0x80, UNIFORM = 0x40, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01;
const MAX_WORKGROUPS = 65535;

/** Bytes of a buffer holding `bytes`: WGSL storage is in 4-byte words (8- and 16-bit types are packed). */
const wordBytes = (bytes) => Math.max(4, Math.ceil(bytes / 4) * 4);

/** A device from navigator.gpu, with the adapter's own limits asked for (the defaults are small). */
async function requestDevice() {
  const gpu = globalThis.navigator && globalThis.navigator.gpu;
  if (!gpu) throw new Error("WebGPU is not available here (no navigator.gpu): pass a GPUDevice as load(weights, { device })");
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error("WebGPU: navigator.gpu.requestAdapter() found no adapter");
  const requiredLimits = {};
  for (const name of ["maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage", "maxComputeWorkgroupsPerDimension"]) requiredLimits[name] = adapter.limits[name];
  // The features some kernels have faster variants for, where the adapter has them.
  const requiredFeatures = ["subgroups", "shader-f16"].filter((f) => adapter.features.has(f));
  return adapter.requestDevice({ requiredFeatures, requiredLimits });
}

/**
 * Whether the device meets a variant's requirement: a feature, subgroups of at least N lanes
 * (`subgroup-min-size-N`), or a WGSL language feature (snake_case, as
 * navigator.gpu.wgslLanguageFeatures lists them; `languageFeatures` is that set, or empty).
 */
function meets(device, requirement, languageFeatures) {
  const size = /^subgroup-min-size-(\d+)$/.exec(requirement);
  if (size) return ((device.adapterInfo && device.adapterInfo.subgroupMinSize) || 0) >= Number(size[1]);
  if (requirement.includes("_")) return languageFeatures.has(requirement);
  return device.features.has(requirement);
}

function gpuBuffer(device, bytes, usage, data) {
  // A kernel binds each buffer whole: one past the device's binding limit cannot run.
  if ((usage & STORAGE) !== 0 && wordBytes(bytes) > device.limits.maxStorageBufferBindingSize)
    throw new RangeError("WebGPU: a buffer of " + wordBytes(bytes) + " bytes is more than this device binds (maxStorageBufferBindingSize " + device.limits.maxStorageBufferBindingSize + "); use smaller sizes");
  const buffer = device.createBuffer({ size: wordBytes(bytes), usage });
  if (data && data.byteLength > 0) writeWords(device, buffer, data);
  return buffer;
}

/** Writes a typed array, padded to whole words (writeBuffer takes multiples of 4 bytes). */
function writeWords(device, buffer, data) {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = bytes.byteLength % 4 === 0 ? bytes : Uint8Array.from({ length: wordBytes(bytes.byteLength) }, (_, i) => bytes[i] ?? 0);
  device.queue.writeBuffer(buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
}

class Session {
  constructor(device, pipelines, fixed) {
    this.device = device;
    this.pipelines = pipelines;
    /** GPU buffers of the params and consts, by buffer id. */
    this.fixed = fixed;
    this.storage = null;
    this.dims = Object.create(null);
    /** The run in progress, which the next one waits for. */
    this.pending = Promise.resolve();
    /** Why the device was lost, once it is: runs then fail at once instead of waiting on it. */
    this.lost = null;
    device.lost.then((info) => (this.lost = info));
  }

  /** Slots, inputs, bind groups and readback buffers for one set of dims, made once per dims. */
  prepare(dims) {
    const key = MANIFEST.dims.map((d) => dims[d]).join(",");
    if (this.storage && this.storage.key === key) return this.storage;
    // Forget the old buffers before making new ones: a failure below must not leave them cached.
    if (this.storage) this.storage.owned.forEach((b) => b.destroy());
    this.storage = null;
    const owned = [];
    try {
      return (this.storage = this.build(dims, key, owned));
    } catch (e) {
      owned.forEach((b) => b.destroy());
      throw e;
    }
  }

  /** The buffers and bind groups for `dims`; every buffer made is put in `owned`. */
  build(dims, key, owned) {
    const device = this.device;
    const own = (b) => (owned.push(b), b);
    const slots = MANIFEST.slots.map((s) => own(gpuBuffer(device, evalSize(s.bytes, dims), STORAGE | COPY_SRC | COPY_DST)));
    const buffers = new Map(this.fixed);
    for (const b of MANIFEST.buffers) if (b.kind === "temp") buffers.set(b.id, slots[b.slot]);
    const byteSize = (spec) => evalSize(spec.size, dims) * ARRAYS[spec.dtype].BYTES_PER_ELEMENT;
    for (const input of MANIFEST.inputs) buffers.set(input.buffer, own(gpuBuffer(device, byteSize(input), STORAGE | COPY_DST | COPY_SRC)));
    const launches = MANIFEST.kernels.map((spec, k) => {
      const entries = spec.buffers.map((id) => buffers.get(id));
      if (spec.dims.length > 0) entries.push(own(gpuBuffer(device, 16 * Math.ceil(spec.dims.length / 4), UNIFORM | COPY_DST, Int32Array.from(spec.dims, (d) => dims[d]))));
      const errors = spec.errors.length > 0 ? own(gpuBuffer(device, 16, STORAGE | COPY_SRC | COPY_DST)) : null;
      if (errors) entries.push(errors);
      const layout = this.pipelines[k].getBindGroupLayout(0);
      const bindGroup = device.createBindGroup({ layout, entries: entries.map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const total = evalSize(spec.grid[0], dims);
      return { bindGroup, errors, workgroups: Math.min(MAX_WORKGROUPS, Math.ceil(total / WORKGROUP_SIZE)) };
    });
    const outputs = MANIFEST.outputs.map((o) => ({ spec: o, bytes: byteSize(o), readback: own(gpuBuffer(device, byteSize(o), MAP_READ | COPY_DST)) }));
    const failing = launches.filter((l) => l.errors);
    const errorReadback = failing.length > 0 ? own(gpuBuffer(device, 16 * failing.length, MAP_READ | COPY_DST)) : null;
    return { key, owned, buffers, launches, outputs, errorReadback };
  }

  /** Runs one after another: runs share the session's buffers. With `times`, each kernel's milliseconds are added to its entry. */
  run(inputs, times) {
    const result = this.pending.then(() => this.runNow(inputs, times));
    this.pending = result.catch(() => {});
    return result;
  }

  /**
   * Each kernel's milliseconds, averaged over `runs` runs after one to warm up. Each kernel is
   * submitted alone and awaited: wall-clock time, so a launch's own overhead is counted too.
   */
  async profile(inputs, runs = 1) {
    await this.run(inputs);
    const times = new Float64Array(MANIFEST.kernels.length);
    for (let r = 0; r < runs; r++) await this.run(inputs, times);
    return MANIFEST.kernels.map((k, i) => ({ kernel: k.name, op: k.op, ms: times[i] / runs }));
  }

  async runNow(inputs, times) {
    if (this.lost) throw new Error("the WebGPU device was lost (" + (this.lost.reason || "unknown") + "): " + this.lost.message);
    const dims = Object.create(null);
    const views = new Array(MANIFEST.buffers.length);
    bindInputs(inputs, views, dims);
    const device = this.device;
    const s = this.prepare(dims);
    for (const input of MANIFEST.inputs) writeWords(device, s.buffers.get(input.buffer), views[input.buffer]);
    const zero = new Int32Array(4);
    for (const l of s.launches) if (l.errors) device.queue.writeBuffer(l.errors, 0, zero);
    const dispatch = (encoder, l, k) => {
      const pass = encoder.beginComputePass();
      pass.setPipeline(this.pipelines[k]);
      pass.setBindGroup(0, l.bindGroup);
      pass.dispatchWorkgroups(l.workgroups);
      pass.end();
    };
    // Timed kernels start once the inputs are written.
    if (times) await device.queue.onSubmittedWorkDone();
    const encoder = device.createCommandEncoder();
    for (let k = 0; k < s.launches.length; k++) {
      const l = s.launches[k];
      if (l.workgroups === 0) continue;
      if (!times) {
        dispatch(encoder, l, k);
        continue;
      }
      const alone = device.createCommandEncoder();
      dispatch(alone, l, k);
      const start = performance.now();
      device.queue.submit([alone.finish()]);
      await device.queue.onSubmittedWorkDone();
      times[k] += performance.now() - start;
    }
    s.launches.filter((l) => l.errors).forEach((l, i) => encoder.copyBufferToBuffer(l.errors, 0, s.errorReadback, 16 * i, 16));
    for (const o of s.outputs) if (o.bytes > 0) encoder.copyBufferToBuffer(s.buffers.get(o.spec.buffer), 0, o.readback, 0, wordBytes(o.bytes));
    device.queue.submit([encoder.finish()]);
    if (s.errorReadback) {
      await s.errorReadback.mapAsync(1);
      const records = new Int32Array(s.errorReadback.getMappedRange().slice(0));
      s.errorReadback.unmap();
      const failing = MANIFEST.kernels.filter((spec) => spec.errors.length > 0);
      for (let i = 0; i < failing.length; i++) if (records[4 * i] !== 0) throw kernelError(failing[i], records.subarray(4 * i, 4 * i + 4));
    }
    const outputs = {};
    for (const o of s.outputs) {
      const Array_ = ARRAYS[o.spec.dtype];
      if (o.bytes === 0) {
        setOwn(outputs, o.spec.name, new Array_(0));
        continue;
      }
      await o.readback.mapAsync(1);
      setOwn(outputs, o.spec.name, new Array_(o.readback.getMappedRange().slice(0, o.bytes)));
      o.readback.unmap();
    }
    this.dims = dims;
    return outputs;
  }

  /** The shape of an output for the dims of the last run. */
  outputShape(name) {
    const o = MANIFEST.outputs.find((x) => x.name === name);
    if (!o) throw new RangeError("no output " + JSON.stringify(name));
    return o.shape.map((d) => (typeof d === "number" ? d : this.dims[d]));
  }

  /** Frees the session's GPU buffers. */
  destroy() {
    if (this.storage) this.storage.owned.forEach((b) => b.destroy());
    this.storage = null;
    for (const b of this.fixed.values()) b.destroy();
  }
}

/**
 * Loads the weights (a safetensors file's bytes) onto the GPU, compiles every kernel's
 * pipeline once, and returns a session that runs the model. `options.device` is the GPUDevice
 * to use; by default one is requested from navigator.gpu. `options.wgslLanguageFeatures` is the
 * set of WGSL language features of the GPU the device came from (its GPU's
 * `wgslLanguageFeatures`); by default navigator.gpu's, or none.
 */
export async function load(weights, options = {}) {
  const params = loadParams(weights, options);
  const device = options.device || (await requestDevice());
  const gpu = globalThis.navigator && globalThis.navigator.gpu;
  const languageFeatures = options.wgslLanguageFeatures || (gpu && gpu.wgslLanguageFeatures) || new Set();
  // A kernel binds its buffers (and its error record) as storage: the device must allow that many.
  for (const spec of MANIFEST.kernels) {
    const bound = spec.buffers.length + (spec.errors.length > 0 ? 1 : 0);
    if (bound > device.limits.maxStorageBuffersPerShaderStage)
      throw new RangeError("WebGPU: kernel " + spec.name + " binds " + bound + " storage buffers, more than this device allows (maxStorageBuffersPerShaderStage " + device.limits.maxStorageBuffersPerShaderStage + ")");
  }
  const fixed = new Map();
  let failure = null;
  device.pushErrorScope("validation");
  try {
    for (const [id, data] of params) fixed.set(id, gpuBuffer(device, data.byteLength, STORAGE | COPY_DST | COPY_SRC, data));
    for (const b of MANIFEST.buffers) if (b.kind === "const") fixed.set(b.id, gpuBuffer(device, ARRAYS[b.dtype].BYTES_PER_ELEMENT, STORAGE | COPY_DST | COPY_SRC, ARRAYS[b.dtype].of(Number(b.encoded))));
  } catch (e) {
    failure = e.message;
  }
  const modules = failure ? [] : SHADERS.map((variants) => device.createShaderModule({ code: variants.find((v) => v.requires.every((r) => meets(device, r, languageFeatures))).code }));
  // A shader the device does not accept is named with its kernel, line and column.
  for (let k = 0; k < modules.length && !failure; k++) {
    const messages = (await modules[k].getCompilationInfo()).messages.filter((m) => m.type === "error");
    if (messages.length > 0) failure = "WebGPU cannot compile kernel " + MANIFEST.kernels[k].name + ": " + messages.map((m) => m.lineNum + ":" + m.linePos + ": " + m.message).join("; ");
  }
  let pipelines = [];
  try {
    if (!failure) pipelines = await Promise.all(modules.map((module, k) => device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: MANIFEST.kernels[k].name } })));
  } catch (e) {
    failure = "WebGPU cannot create the model's pipelines: " + e.message;
  }
  // Always pop the scope this load pushed, so that a failed load leaves the device as it was.
  const error = await device.popErrorScope();
  if (failure || error) {
    for (const b of fixed.values()) b.destroy();
    throw new Error(failure || "WebGPU rejected the model's kernels: " + error.message);
  }
  return new Session(device, pipelines, fixed);
}
