// ---- runtime: the part of every JS artifact that is not generated ----------------------
// Expects MANIFEST, KERNELS and the shared artifact runtime above. Self-contained: imports nothing.

/** The error record of a kernel that can fail: the code of its first error, then that error's values. */
const ERRORS = new Int32Array(4);

/** How long run() computes before it lets the event loop run (timers, I/O, rendering). */
const YIELD_MS = 10;

/** A macrotask: setImmediate in Node; a message in a browser (setTimeout would be clamped to 4 ms). */
function nextTask() {
  if (typeof setImmediate === "function") return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(0);
  });
}

class Session {
  constructor(params) {
    this.params = params;
    this.storage = null;
    /** The dims bound by the last run. */
    this.dims = Object.create(null);
    /** Runs take turns: they share the temporaries' storage. */
    this.queue = Promise.resolve();
  }

  /**
   * Runs the model, letting the event loop run between kernels every few milliseconds, so a
   * long run does not block the caller's timers and I/O for long (one kernel runs whole).
   */
  run(inputs) {
    const result = this.queue.then(async () => {
      const steps = this.steps(inputs);
      let last = performance.now();
      for (let step = steps.next(); ; step = steps.next()) {
        if (step.done) return step.value;
        if (performance.now() - last > YIELD_MS) {
          await nextTask();
          last = performance.now();
        }
      }
    });
    this.queue = result.catch(() => {});
    return result;
  }

  /**
   * Runs the model `runs` times (after one untimed warm-up run) and returns each kernel's mean
   * time in launch order: where one forward's time goes.
   */
  async profile(inputs, runs = 1) {
    this.runSync(inputs);
    const times = new Float64Array(KERNELS.length);
    for (let r = 0; r < runs; r++) this.runSync(inputs, times);
    return MANIFEST.kernels.map((k, i) => ({ kernel: k.name, op: k.op, ms: times[i] / runs }));
  }

  /** Runs the model to the end before returning: the caller's event loop waits. With `times`, each kernel's milliseconds are added to its entry. */
  runSync(inputs, times) {
    const steps = this.steps(inputs, times);
    for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value;
  }

  /** The run, one kernel per step; returns the outputs. */
  *steps(inputs, times) {
    const dims = Object.create(null);
    const views = new Array(MANIFEST.buffers.length);
    bindInputs(inputs, views, dims);
    // Temporaries live in slots shared by liveness; keep them while the sizes do not change.
    const key = MANIFEST.dims.map((d) => dims[d]).join(",");
    if (!this.storage || this.storage.key !== key) this.storage = { key, slots: MANIFEST.slots.map((s) => new ArrayBuffer(evalSize(s.bytes, dims))) };
    for (const b of MANIFEST.buffers) {
      if (b.kind === "temp") views[b.id] = new ARRAYS[b.dtype](this.storage.slots[b.slot], 0, evalSize(b.size, dims));
      else if (b.kind === "const") views[b.id] = ARRAYS[b.dtype].of(Number(b.encoded));
      else if (b.kind === "param") views[b.id] = this.params.get(b.id);
    }
    for (let i = 0; i < KERNELS.length; i++) {
      const spec = MANIFEST.kernels[i];
      const args = spec.buffers.map((b) => views[b]);
      for (const d of spec.dims) args.push(dims[d]);
      if (spec.errors.length > 0) {
        ERRORS.fill(0);
        args.push(ERRORS);
      }
      const start = times ? performance.now() : 0;
      KERNELS[i](...args);
      if (times) times[i] += performance.now() - start;
      if (spec.errors.length > 0 && ERRORS[0] !== 0) throw kernelError(spec, ERRORS);
      yield;
    }
    this.dims = dims;
    const outputs = {};
    // Copies: the slots are reused by the next run.
    for (const o of MANIFEST.outputs) setOwn(outputs, o.name, views[o.buffer].slice(0, evalSize(o.size, dims)));
    return outputs;
  }

  /** The shape of an output for the dims of the last run. */
  outputShape(name) {
    const o = MANIFEST.outputs.find((x) => x.name === name);
    if (!o) throw new RangeError("no output " + JSON.stringify(name));
    return o.shape.map((d) => (typeof d === "number" ? d : this.dims[d]));
  }
}

/** Loads the weights (a safetensors file's bytes; options: prefix, rename, allowUnused) and returns a session that runs the model. */
export async function load(weights, options) {
  return new Session(loadParams(weights, options));
}
