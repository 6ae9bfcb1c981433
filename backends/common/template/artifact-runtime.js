// ---- the host side every JS-facing artifact shares (JS, WebGPU): typed arrays per dtype,
// safetensors parsing, binding dims from the inputs, kernel error messages. Copied into each
// artifact; expects MANIFEST, firstDuplicateKey (common/json-keys.js) and the weights-binding
// rules (common/weights.js) above. Self-contained: imports nothing.

const ARRAYS = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };
/** What a safetensors file may hold: the model's dtypes, and f64 and i64 (NumPy's and PyTorch's defaults), converted on load. */
const FILE_DTYPES = { F32: "f32", F16: "f16", BF16: "bf16", I32: "i32", I8: "i8", U8: "u8", BOOL: "bool", F64: "f64", I64: "i64" };
const FILE_ARRAYS = { ...ARRAYS, f64: Float64Array, i64: BigInt64Array };
const INTEGER_RANGES = { i32: [-2147483648, 2147483647], i8: [-128, 127], u8: [0, 255] };

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
    const dtype = entry && Object.hasOwn(FILE_DTYPES, entry.dtype) ? FILE_DTYPES[entry.dtype] : undefined;
    if (!dtype) throw fail(name + " has unsupported dtype " + JSON.stringify(entry && entry.dtype));
    const shape = entry.shape;
    const [begin, end] = entry.data_offsets || [];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(name + " has an invalid shape");
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || dataStart + end > bytes.length) throw fail(name + " has data offsets out of range");
    const Array_ = FILE_ARRAYS[dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    if ((end - begin) !== count * Array_.BYTES_PER_ELEMENT) throw fail(name + " holds " + (end - begin) + " bytes, but " + dtype + formatShape(shape) + " needs " + count * Array_.BYTES_PER_ELEMENT);
    // Copy: the file's offsets need not be aligned for the typed array.
    const data = new Array_(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, data });
  }
  return tensors;
}

/** An int64 input as i32, each value checked to fit. */
function int32Of(name, values) {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    if (values[i] < -2147483648n || values[i] > 2147483647n) throw new RangeError("input " + JSON.stringify(name) + " holds " + values[i] + " at index " + i + ", outside i32");
    out[i] = Number(values[i]);
  }
  return out;
}

/** Binds the model's dims from the inputs: a given shape, or the one size a flat array leaves open. */
function bindInputs(inputs, views, dims) {
  if (inputs === null || typeof inputs !== "object") throw new TypeError("run() takes an object of inputs");
  const unknown = Object.keys(inputs).filter((k) => !MANIFEST.inputs.some((i) => i.name === k));
  if (unknown.length) throw new TypeError("the model has no input " + unknown.map((k) => JSON.stringify(k)).join(", ") + " (its inputs: " + MANIFEST.inputs.map((i) => i.name).join(", ") + ")");
  for (const input of MANIFEST.inputs) {
    const value = Object.hasOwn(inputs, input.name) ? inputs[input.name] : undefined;
    if (value === undefined) throw new TypeError("missing input " + JSON.stringify(input.name) + ": " + input.dtype + formatShape(input.shape));
    const given = ArrayBuffer.isView(value) ? value : value && value.data;
    const Array_ = ARRAYS[input.dtype];
    // Token ids as PyTorch and ONNX Runtime hold them (int64) are taken when every one fits.
    const data = input.dtype === "i32" && given instanceof BigInt64Array ? int32Of(input.name, given) : given;
    if (!(data instanceof Array_)) throw new TypeError("input " + JSON.stringify(input.name) + " must be a " + Array_.name + (input.dtype === "i32" ? " or a BigInt64Array" : "") + " (" + input.dtype + ")");
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


/** A 16-bit float's value from its bits. */
function decodeHalf(dtype, bits) {
  if (dtype === "bf16") return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
  const exp = (bits >>> 10) & 0x1f, mant = bits & 0x3ff, sign = bits & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  return exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** A 16-bit float's bits for x, rounded to nearest even (from x's f32 bits, as the compiler's numeric.ts does). */
function encodeHalf(dtype, x) {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  if (dtype === "bf16") return (bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff ? (bits >>> 16) | 0x40 : ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  const sign = (bits >>> 16) & 0x8000, exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e, half = 1 << (shift - 1), rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** A file tensor's values in the param's dtype: floats rounded to it, integers range-checked. */
function convertTensor(name, t, p) {
  const out = new ARRAYS[p.dtype](t.data.length);
  const range = INTEGER_RANGES[p.dtype];
  for (let i = 0; i < out.length; i++) {
    const raw = t.data[i];
    const x = t.dtype === "f16" || t.dtype === "bf16" ? decodeHalf(t.dtype, raw) : Number(raw);
    if (range && (x < range[0] || x > range[1])) throw new RangeError("weights: " + JSON.stringify(name) + " holds " + x + " at index " + i + ", outside " + p.dtype);
    out[i] = p.dtype === "f16" || p.dtype === "bf16" ? encodeHalf(p.dtype, x) : x;
  }
  return out;
}

/**
 * The params the manifest names, by buffer id, from a safetensors file's bytes, bound by the
 * rules of common/weights.js (above): strict, with a name prefix, a rename map and unused
 * tensors allowed as options; float dtypes converted, said once on stderr (console.warn).
 */
function loadParams(weights, options = {}) {
  const bytes = weights instanceof Uint8Array ? weights : new Uint8Array(weights);
  const tensors = parseSafetensors(bytes);
  const binding = bindWeights(MANIFEST.params, [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), options);
  if (binding.problems.length) throw new Error([bindingSummary(binding, "weights", MANIFEST.model), ...binding.problems, ...(binding.hint ? [binding.hint] : [])].join("\n  "));
  const params = new Map();
  for (const p of MANIFEST.params) {
    const name = binding.sources.get(p.name);
    const t = tensors.get(name);
    params.set(p.buffer, t.dtype === p.dtype ? t.data : convertTensor(name, t, p));
  }
  const note = conversionNote(binding, "weights");
  if (note) console.warn("note: " + note);
  return params;
}

export const manifest = MANIFEST;
