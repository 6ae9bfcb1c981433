// ---- the host side every JS-facing artifact shares (JS, WebGPU): typed arrays per dtype,
// safetensors parsing, binding dims from the inputs, kernel error messages. Copied into each
// artifact; expects MANIFEST and firstDuplicateKey (common/json-keys.js) above. Self-contained:
// imports nothing.

const ARRAYS = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };
const SAFETENSORS_DTYPES = { F32: "f32", F16: "f16", BF16: "bf16", I32: "i32", I8: "i8", U8: "u8", BOOL: "bool" };

function evalSize(m, dims) {
  let v = m.coefficient;
  for (const s of m.symbols) v *= dims[s];
  return v;
}

/** The error a kernel's record (the code of its first error, then that error's values) reports. */
function kernelError(spec, record) {
  const error = spec.errors.find((e) => e.code === record[0]);
  return new RangeError(error.message.replace(/\{(\d)\}/g, (_, i) => String(record[Number(i) + 1])));
}

/** Sets an own property, even one named __proto__ (an assignment would set the prototype). */
function setOwn(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function formatShape(shape) {
  return "[" + shape.join(", ") + "]";
}

/** Reads a safetensors file into typed arrays, rejecting malformed files with a clear error. */
function parseSafetensors(bytes) {
  const fail = (why) => new Error("weights: not a valid safetensors file: " + why);
  if (bytes.length < 8) throw fail("shorter than its 8-byte header length");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw fail("header length " + headerLength + " runs past the end of the file");
  let header, text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch {
    throw fail("the header is not valid JSON");
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail("the header is not a JSON object");
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw fail("the header names " + JSON.stringify(duplicate) + " twice");
  const dataStart = 8 + headerLength;
  const tensors = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const dtype = entry && Object.hasOwn(SAFETENSORS_DTYPES, entry.dtype) ? SAFETENSORS_DTYPES[entry.dtype] : undefined;
    if (!dtype) throw fail(name + " has unsupported dtype " + JSON.stringify(entry && entry.dtype));
    const shape = entry.shape;
    const [begin, end] = entry.data_offsets || [];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(name + " has an invalid shape");
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || dataStart + end > bytes.length) throw fail(name + " has data offsets out of range");
    const Array_ = ARRAYS[dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    if ((end - begin) !== count * Array_.BYTES_PER_ELEMENT) throw fail(name + " holds " + (end - begin) + " bytes, but " + dtype + formatShape(shape) + " needs " + count * Array_.BYTES_PER_ELEMENT);
    // Copy: the file's offsets need not be aligned for the typed array.
    const data = new Array_(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, data });
  }
  return tensors;
}

/** Binds the model's dims from the inputs: a given shape, or the one size a flat array leaves open. */
function bindInputs(inputs, views, dims) {
  if (inputs === null || typeof inputs !== "object") throw new TypeError("run() takes an object of inputs");
  for (const input of MANIFEST.inputs) {
    const value = Object.hasOwn(inputs, input.name) ? inputs[input.name] : undefined;
    if (value === undefined) throw new TypeError("missing input " + JSON.stringify(input.name) + ": " + input.dtype + formatShape(input.shape));
    const data = ArrayBuffer.isView(value) ? value : value && value.data;
    const Array_ = ARRAYS[input.dtype];
    if (!(data instanceof Array_)) throw new TypeError("input " + JSON.stringify(input.name) + " must be a " + Array_.name + " (" + input.dtype + ")");
    const shape = ArrayBuffer.isView(value) ? null : value.shape;
    if (shape !== undefined && shape !== null && !(Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0)))
      throw new TypeError("input " + JSON.stringify(input.name) + ": shape must be an array of non-negative integers, got " + JSON.stringify(shape));
    if (shape) {
      if (shape.length !== input.shape.length) throw new RangeError("input " + JSON.stringify(input.name) + " must have shape " + formatShape(input.shape) + ", got " + formatShape(shape));
      input.shape.forEach((d, i) => {
        const want = typeof d === "number" ? d : dims[d];
        if (want === undefined) dims[d] = shape[i];
        else if (want !== shape[i]) throw new RangeError("input " + JSON.stringify(input.name) + " must have shape " + formatShape(input.shape) + ", got " + formatShape(shape) + (typeof d === "string" ? " (" + d + " = " + want + ")" : ""));
      });
    } else {
      let known = 1;
      const open = [];
      for (const d of input.shape) {
        if (typeof d === "number") known *= d;
        else if (dims[d] !== undefined) known *= dims[d];
        else if (!open.includes(d)) open.push(d);
        else throw new RangeError("input " + JSON.stringify(input.name) + " repeats dim " + d + ": pass { data, shape }");
      }
      if (open.length > 1) throw new RangeError("input " + JSON.stringify(input.name) + " has several unbound dims (" + open.join(", ") + "): pass { data, shape }");
      if (open.length === 1) {
        if (known === 0 || data.length % known !== 0) throw new RangeError("input " + JSON.stringify(input.name) + " has " + data.length + " values, not a multiple of " + known + " for shape " + formatShape(input.shape));
        dims[open[0]] = data.length / known;
      }
    }
    const need = evalSize(input.size, dims);
    if (data.length !== need) throw new RangeError("input " + JSON.stringify(input.name) + " has " + data.length + " values, but " + input.dtype + formatShape(input.shape) + " needs " + need);
    views[input.buffer] = data;
  }
  for (const d of MANIFEST.dims) if (dims[d] === undefined) throw new RangeError("dim " + d + " is not bound by any input");
}


/** The params the manifest names, by buffer id, from a safetensors file's bytes: each present, with its dtype and shape. */
function loadParams(weights) {
  const bytes = weights instanceof Uint8Array ? weights : new Uint8Array(weights);
  const tensors = parseSafetensors(bytes);
  const params = new Map();
  for (const p of MANIFEST.params) {
    const t = tensors.get(p.name);
    if (!t) throw new Error("weights lack param " + JSON.stringify(p.name) + " (" + p.dtype + formatShape(p.shape) + ")");
    if (t.dtype !== p.dtype || formatShape(t.shape) !== formatShape(p.shape)) throw new Error("weights: " + JSON.stringify(p.name) + " is " + t.dtype + formatShape(t.shape) + ", but the model declares " + p.dtype + formatShape(p.shape));
    params.set(p.buffer, t.data);
  }
  return params;
}

export const manifest = MANIFEST;
