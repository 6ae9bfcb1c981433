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

/**
 * The multiply-adds below which a kernel that could split runs whole on the calling thread:
 * a share's round trip to a worker costs some tens of microseconds, about a million
 * multiply-adds of SIMD work, so a split pays only well above that (decode steps, short
 * sequences stay on one thread).
 */
const MIN_SPLIT_WORK = 2 ** 22;

/** Whether `array` lives in shared memory that worker threads see. */
const isShared = (array) => typeof SharedArrayBuffer === "function" && array.buffer instanceof SharedArrayBuffer;

/** `array`'s values in shared memory (a copy unless it is there already). */
function shared(array) {
  if (isShared(array)) return array;
  const copy = new array.constructor(new SharedArrayBuffer(array.byteLength));
  copy.set(array);
  return copy;
}

/**
 * What a worker thread runs: its own copy of the kernels, and a loop that runs the share of a
 * kernel it is sent on the session's shared buffers, then answers.
 */
function workerSource() {
  return `"use strict";
const KERNELS = (${kernelProgram.toString()})();
// Each session's params, sent once: a kernel gets the same param arrays in every call, as on
// the main thread, so what it keeps per param (a matmul's packed weights) is made once.
const SESSIONS = new Map();
function listen(port) {
  const receive = (m) => {
    if (m.params) return void SESSIONS.set(m.session, m.params);
    if (m.drop !== undefined) return void SESSIONS.delete(m.drop);
    try {
      const params = SESSIONS.get(m.session);
      const args = m.args.map((a) => (a !== null && typeof a === "object" && "param" in a ? params.get(a.param) : a));
      KERNELS[m.kernel](...args, m.part, m.parts);
      port.postMessage({ done: true });
    } catch (e) {
      port.postMessage({ error: e instanceof Error ? e.message : String(e) });
    }
  };
  if (port.on) port.on("message", receive);
  else port.onmessage = (event) => receive(event.data);
}
// A Web Worker; a Node worker evaluated as CommonJS; one evaluated as a module (the main
// script's --input-type=module carries over), which has no require.
if (typeof self === "object") listen(self);
else if (typeof require === "function") listen(require("node:worker_threads").parentPort);
else import("node:worker_threads").then((threads) => listen(threads.parentPort));
`;
}

/** The cores available: Node's count, a browser's navigator.hardwareConcurrency, else 1. */
async function availableCores() {
  if (typeof process === "object" && process.versions && process.versions.node) return (await import(/* webpackIgnore: true */ /* @vite-ignore */ "node:os")).availableParallelism();
  return (typeof navigator === "object" && navigator.hardwareConcurrency) || 1;
}

/**
 * `count` worker threads, each as { run(message): Promise, terminate() }: worker_threads in Node,
 * Web Workers in a browser with cross-origin isolation (SharedArrayBuffer), none elsewhere.
 */
async function startWorkers(count) {
  if (count < 1 || typeof SharedArrayBuffer !== "function") return [];
  const source = workerSource();
  let spawn;
  if (typeof process === "object" && process.versions && process.versions.node) {
    const { Worker } = await import(/* webpackIgnore: true */ /* @vite-ignore */ "node:worker_threads");
    spawn = () => {
      const worker = new Worker(source, { eval: true });
      return { worker, listen: (f) => worker.on("message", f), onError: (f) => worker.on("error", f), busy: (on) => (on ? worker.ref() : worker.unref()) };
    };
  } else if (typeof Worker === "function" && globalThis.crossOriginIsolated) {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    spawn = () => {
      const worker = new Worker(url);
      return { worker, listen: (f) => (worker.onmessage = (e) => f(e.data)), onError: (f) => (worker.onerror = (e) => f(new Error(e.message))), busy: () => {} };
    };
  } else return [];
  return Array.from({ length: count }, () => {
    const w = spawn();
    // Shares sent by sessions that run at once take turns; an idle worker gets its share at
    // once (in the caller's turn, not a later microtask), so that it computes while the caller
    // computes its own.
    const waiting = [];
    let pending = null;
    const next = () => {
      if (pending || !waiting.length) return;
      pending = waiting.shift();
      w.busy(true);
      w.worker.postMessage(pending.message);
    };
    const settle = (error) => {
      const p = pending;
      pending = null;
      w.busy(false);
      if (p) error ? p.reject(error) : p.resolve();
      next();
    };
    w.listen((m) => settle(m.error === undefined ? undefined : new Error(m.error)));
    w.onError((e) => settle(e));
    // An idle worker keeps no process alive; one that computes a share does. (After the
    // listeners: in Node a message listener refs the worker again.)
    w.busy(false);
    return {
      run: (message) =>
        new Promise((resolve, reject) => {
          waiting.push({ message, resolve, reject });
          next();
        }),
      /** A message that gets no answer (a session's params, or their release): it arrives before any later run. */
      post: (message) => w.worker.postMessage(message),
      terminate: () => w.worker.terminate(),
    };
  });
}

/**
 * The worker threads that every session of this module shares, started as sessions first ask
 * for them and ended when no session uses them any more (closed, or garbage-collected).
 */
const WORKERS = [];
let workerUsers = 0;
const unusedSessions = typeof FinalizationRegistry === "function" ? new FinalizationRegistry(releaseWorkers) : null;

let sessionCount = 0;

/**
 * `count` of the shared workers (fewer where none can start), starting those missing, for a
 * session that holds them until releaseWorkers(session).
 */
async function sharedWorkers(count) {
  if (WORKERS.length < count) WORKERS.push(...(await startWorkers(count - WORKERS.length)));
  const workers = WORKERS.slice(0, count);
  if (workers.length) workerUsers++;
  return workers;
}

/** A session no longer uses the workers: they forget its params, and end with the last session. */
function releaseWorkers(session) {
  for (const w of WORKERS) w.post({ drop: session });
  if (--workerUsers > 0) return;
  for (const w of WORKERS.splice(0)) w.terminate();
}

class Session {
  /** `workers` run shares of the kernels that split (none: every kernel runs whole here). */
  constructor(params, workers, minSplitWork) {
    this.workers = workers;
    this.minSplitWork = minSplitWork;
    this.id = sessionCount++;
    // The token unregisters the session from the finalizer when close() releases the workers first.
    if (workers.length && unusedSessions) unusedSessions.register(this, this.id, this);
    // Worker threads see only shared memory: the params are copied there once, and sent once.
    this.params = workers.length ? new Map([...params].map(([id, p]) => [id, shared(p)])) : params;
    for (const w of workers) w.post({ session: this.id, params: this.params });
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
      const steps = this.steps(inputs, undefined, this.workers);
      let last = performance.now();
      for (let step = steps.next(); ; step = steps.next()) {
        if (step.done) return step.value;
        // The workers' shares of a split kernel.
        if (step.value) await step.value;
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

  /**
   * Runs the model to the end before returning, on this thread alone: the caller's event loop
   * waits. With `times`, each kernel's milliseconds are added to its entry.
   */
  runSync(inputs, times) {
    const steps = this.steps(inputs, times);
    for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value;
  }

  /**
   * The run, one kernel per step; returns the outputs. With `workers`, a kernel that splits
   * runs its first share here and the others on them: the step yields their completion.
   */
  *steps(inputs, times, workers = []) {
    const dims = Object.create(null);
    const views = new Array(MANIFEST.buffers.length);
    bindInputs(inputs, views, dims);
    // Temporaries live in slots shared by liveness; keep them while the sizes do not change.
    const key = MANIFEST.dims.map((d) => dims[d]).join(",");
    const Buffer_ = this.workers.length ? SharedArrayBuffer : ArrayBuffer;
    // `folded`: the results computed from params alone are in their slots (computed once, by
    // the first run with these sizes: constant folding over params).
    if (!this.storage || this.storage.key !== key) this.storage = { key, slots: MANIFEST.slots.map((s) => new Buffer_(evalSize(s.bytes, dims))), folded: false };
    // Inputs outside shared memory are copied into it, into buffers kept while the sizes hold.
    if (workers.length)
      for (const input of MANIFEST.inputs) {
        const given = views[input.buffer];
        if (isShared(given)) continue;
        const staged = (this.storage.inputs ??= new Map());
        let copy = staged.get(input.buffer);
        if (!copy || copy.length !== given.length || copy.constructor !== given.constructor) staged.set(input.buffer, (copy = new given.constructor(new SharedArrayBuffer(given.byteLength))));
        copy.set(given);
        views[input.buffer] = copy;
      }
    for (const b of MANIFEST.buffers) {
      if (b.kind === "temp") views[b.id] = new ARRAYS[b.dtype](this.storage.slots[b.slot], 0, evalSize(b.size, dims));
      else if (b.kind === "const") views[b.id] = ARRAYS[b.dtype].of(Number(b.encoded));
      else if (b.kind === "param") views[b.id] = this.params.get(b.id);
    }
    const folded = this.storage.folded;
    for (let i = 0; i < KERNELS.length; i++) {
      const spec = MANIFEST.kernels[i];
      if (folded && MANIFEST.buffers[spec.output].fromParams) continue;
      const args = spec.buffers.map((b) => views[b]);
      for (const d of spec.dims) args.push(dims[d]);
      if (spec.errors.length > 0) {
        ERRORS.fill(0);
        args.push(ERRORS);
      }
      const start = times ? performance.now() : 0;
      if (spec.split && workers.length && evalSize(spec.work, dims) >= this.minSplitWork) {
        const parts = workers.length + 1;
        // Params by reference to what the workers hold for this session.
        const sent = args.map((a, k) => (k < spec.buffers.length && MANIFEST.buffers[spec.buffers[k]].kind === "param" ? { param: spec.buffers[k] } : a));
        const shares = Promise.all(workers.map((w, p) => w.run({ kernel: i, session: this.id, args: sent, part: p + 1, parts })));
        // Awaited below, unless this thread's share throws first: then its error is the run's.
        shares.catch(() => {});
        KERNELS[i](...args, 0, parts);
        yield shares;
        continue;
      }
      KERNELS[i](...args);
      if (times) times[i] += performance.now() - start;
      if (spec.errors.length > 0 && ERRORS[0] !== 0) throw kernelError(spec, ERRORS);
      yield;
    }
    this.storage.folded = true;
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

  /** The threads that run() computes on: this one and its workers. */
  get threads() {
    return this.workers.length + 1;
  }

  /**
   * Stops using worker threads: run() and runSync() go on, on this thread alone. (The workers
   * are shared by the module's sessions and end with the last one; idle, they keep no Node
   * process alive.)
   */
  close() {
    if (!this.workers.length) return;
    this.workers = [];
    if (unusedSessions) unusedSessions.unregister(this);
    releaseWorkers(this.id);
  }
}

/**
 * Loads the weights (a safetensors file's bytes; options: prefix, rename, allowUnused;
 * threads: how many threads run the kernels that split, default the cores available;
 * minSplitWork: the multiply-adds below which such a kernel runs whole, default 2^22) and
 * returns a session that runs the model.
 */
export async function load(weights, options = {}) {
  const threads = options.threads ?? (MANIFEST.kernels.some((k) => k.split) ? await availableCores() : 1);
  if (!Number.isSafeInteger(threads) || threads < 1) throw new TypeError("load(): threads must be a positive integer, got " + String(threads));
  const minSplitWork = options.minSplitWork ?? MIN_SPLIT_WORK;
  if (!(minSplitWork >= 0)) throw new TypeError("load(): minSplitWork must be a number >= 0, got " + String(minSplitWork));
  const params = loadParams(weights, options);
  return new Session(params, MANIFEST.kernels.some((k) => k.split) && threads > 1 ? await sharedWorkers(threads - 1) : [], minSplitWork);
}
