// Reading and writing safetensors files (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header mapping each tensor name to
// {dtype, shape, data_offsets}, then the raw little-endian data. The reader trusts
// nothing in the file: every bad byte sequence becomes a Diagnostic naming the file.
import * as fs from "node:fs";
import * as path from "node:path";
import { constants as bufferConstants } from "node:buffer";
import { Diagnostic, InternalError } from "../common/diagnostic.ts";
import { readRegularFile, withSignalsDeferred } from "../common/files.ts";
import { firstDuplicateKey } from "../common/json-keys.js";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits, saturate } from "../compiler/ir/numeric.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { type DType, formatShape, numel } from "../compiler/ir/types.ts";

export interface SafetensorsFile {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** The largest file read: the longest buffer Node allocates. */
const MAX_LENGTH = bufferConstants.MAX_LENGTH;

/** The reference implementation's limit, so a corrupt length cannot make us parse 4 GB. */
export const MAX_HEADER_BYTES = 100_000_000;

interface FileDType {
  name: string;
  dtype: DType;
  bytes: number;
  read(view: DataView, offset: number): number;
}

const FILE_DTYPES: Record<string, FileDType> = {
  F32: { name: "F32", dtype: "f32", bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  F16: { name: "F16", dtype: "f16", bytes: 2, read: (v, o) => f16FromBits(v.getUint16(o, true)) },
  BF16: { name: "BF16", dtype: "bf16", bytes: 2, read: (v, o) => bf16FromBits(v.getUint16(o, true)) },
  I32: { name: "I32", dtype: "i32", bytes: 4, read: (v, o) => v.getInt32(o, true) },
  I8: { name: "I8", dtype: "i8", bytes: 1, read: (v, o) => v.getInt8(o) },
  U8: { name: "U8", dtype: "u8", bytes: 1, read: (v, o) => v.getUint8(o) },
  BOOL: { name: "BOOL", dtype: "bool", bytes: 1, read: (v, o) => (v.getUint8(o) ? 1 : 0) },
  // NumPy saves float64 by default; we have no f64, so such weights load as f32.
  F64: { name: "F64", dtype: "f32", bytes: 8, read: (v, o) => Math.fround(v.getFloat64(o, true)) },
  // PyTorch's default integer (token ids): loads as i32 when every value fits, checked when decoded.
  I64: { name: "I64", dtype: "i32", bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
};

/**
 * The file bytes of tensors read from a safetensors file whose data was never decoded (and so
 * never changed), in the encoding that serializeSafetensors writes for their dtype.
 */
const ENCODED = new WeakMap<HostTensor, Uint8Array>();

const FILE_DTYPE_OF: Record<DType, string> = {
  f32: "F32",
  f16: "F16",
  bf16: "BF16",
  i32: "I32",
  i8: "I8",
  u8: "U8",
  bool: "BOOL",
};

interface Entry {
  name: string;
  format: FileDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses a safetensors file's bytes. The tensors read `bytes` when first used: leave it unchanged. */
export function parseSafetensors(bytes: Uint8Array, fileName = "<buffer>"): SafetensorsFile {
  const fail = (message: string): never => {
    throw new Diagnostic(`${fileName}: ${message}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // A u64; past 2^53 the sum is inexact, but then it is far over the limit anyway.
  const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLength > MAX_HEADER_BYTES) {
    fail(`header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (8 + headerLength > bytes.length) {
    fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  }

  let header: unknown;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("header is not a JSON object");
  // JSON.parse keeps the last of two equal keys; a second tensor of the same name is an error.
  const duplicate = firstDuplicateKey(text!);
  if (duplicate !== undefined) fail(`the header names ${JSON.stringify(duplicate)} twice`);

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header as object)) {
    if (name === "__metadata__") metadata = parseMetadata(value, fail);
    else entries.push(parseEntry(name, value, dataLength, fail));
  }
  checkOverlaps(entries, fail);

  // Each tensor is decoded to float64 only when its data is first read: a checkpoint's unused
  // tensors (a 200 MB u8 table would take 1.6 GB as float64) cost nothing, and one passed on to
  // an artifact (serializeSafetensors) goes as its file's bytes, in its own dtype.
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    let data: Float64Array | undefined;
    const decode = (): Float64Array => {
      ENCODED.delete(tensor);
      data = new Float64Array(numel(e.shape));
      const base = dataStart + e.begin;
      for (let i = 0; i < data.length; i++) data[i] = e.format.read(view, base + i * e.format.bytes);
      if (e.format.name === "I64") {
        const bad = data.findIndex((x) => x !== (x | 0));
        if (bad >= 0) fail(`tensor ${JSON.stringify(e.name)} holds ${data[bad]} at index ${bad}, outside i32 (-2147483648..2147483647), the widest integer difftc has`);
      }
      return data;
    };
    const tensor: HostTensor = {
      dtype: e.format.dtype,
      shape: e.shape,
      get data() {
        return data ?? decode();
      },
    };
    // Not BOOL: a file may store any nonzero byte for true, and we write 1.
    if (FILE_DTYPE_OF[e.format.dtype] === e.format.name && e.format.name !== "BOOL") ENCODED.set(tensor, bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, tensor);
  }
  return { tensors, metadata };
}

function parseMetadata(value: unknown, fail: (m: string) => never): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("__metadata__ is not a JSON object");
  const pairs = Object.entries(value as object);
  for (const [key, v] of pairs) {
    if (typeof v !== "string") fail(`__metadata__ value ${JSON.stringify(key)} is not a string`);
  }
  return Object.fromEntries(pairs);
}

function parseEntry(name: string, value: unknown, dataLength: number, fail: (m: string) => never): Entry {
  const tensor = `tensor ${JSON.stringify(name)}`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${tensor} is not a JSON object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (dtype === undefined) fail(`${tensor} has no dtype`);
  if (shape === undefined) fail(`${tensor} has no shape`);
  if (offsets === undefined) fail(`${tensor} has no data_offsets`);

  if (typeof dtype !== "string" || !Object.hasOwn(FILE_DTYPES, dtype)) {
    fail(`${tensor} has unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(FILE_DTYPES).join(", ")})`);
  }
  const format = FILE_DTYPES[dtype as string];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`${tensor} has shape ${JSON.stringify(shape)}; sizes must be non-negative integers`);
  }
  const sizes = shape as number[];
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(`${tensor} has data_offsets ${JSON.stringify(offsets)}; expected two non-negative integers`);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) fail(`${tensor} has reversed data_offsets [${begin}, ${end}]`);
  if (end > dataLength) {
    fail(`${tensor} data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`);
  }
  const needed = numel(sizes) * format.bytes;
  if (end - begin !== needed) {
    fail(`${tensor} has ${end - begin} bytes but ${dtype}${formatShape(sizes)} needs ${needed}`);
  }
  return { name, format, shape: sizes, begin, end };
}

/** Two tensors sharing bytes would alias each other's values: no writer produces that. */
function checkOverlaps(entries: Entry[], fail: (m: string) => never): void {
  const byOffset = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byOffset.length; i++) {
    const [prev, cur] = [byOffset[i - 1], byOffset[i]];
    if (cur.begin < prev.end) {
      fail(
        `tensor ${JSON.stringify(cur.name)} (bytes ${cur.begin}..${cur.end}) overlaps ` +
          `tensor ${JSON.stringify(prev.name)} (bytes ${prev.begin}..${prev.end})`,
      );
    }
  }
}

export function readSafetensors(file: string): SafetensorsFile {
  return parseSafetensors(readRegularFile(file, MAX_LENGTH, "safetensors file"), file);
}

type TensorSet = Map<string, HostTensor> | Record<string, HostTensor>;

export function serializeSafetensors(tensors: TensorSet, metadata?: Record<string, string>): Uint8Array {
  const named = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  // Code-unit order, not localeCompare: the bytes must not depend on the machine's locale.
  named.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  // fromEntries, not assignment, so a tensor named "__proto__" is still an own key.
  const entries: [string, unknown][] = [];
  if (metadata && Object.keys(metadata).length > 0) entries.push(["__metadata__", metadata]);
  let offset = 0;
  for (const [name, t] of named) {
    if (name === "__metadata__") throw new Diagnostic(`a tensor cannot be named "__metadata__"`);
    const n = numel(t.shape);
    if (!ENCODED.has(t) && t.data.length !== n) {
      throw new InternalError(`tensor ${name} of shape ${formatShape(t.shape)} holds ${t.data.length} values`);
    }
    const size = n * FILE_DTYPES[FILE_DTYPE_OF[t.dtype]].bytes;
    entries.push([name, { dtype: FILE_DTYPE_OF[t.dtype], shape: t.shape, data_offsets: [offset, offset + size] }]);
    offset += size;
  }

  // Padded with spaces to a multiple of 8, as the reference writer does, so the data is aligned.
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(entries)));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength, true); // the high word stays 0: headers are far below 4 GB
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of named) {
    const encoded = ENCODED.get(t);
    if (encoded) {
      out.set(encoded, at);
      at += encoded.length;
    } else at = writeData(view, at, t);
  }
  return out;
}

/** Writes t's values in its file encoding at `at`; returns the offset after them. */
function writeData(view: DataView, at: number, t: HostTensor): number {
  for (const x of t.data) {
    switch (t.dtype) {
      case "f32":
        view.setFloat32(at, x, true);
        at += 4;
        break;
      case "f16":
        view.setUint16(at, f16Bits(x), true);
        at += 2;
        break;
      case "bf16":
        view.setUint16(at, bf16Bits(x), true);
        at += 2;
        break;
      case "i32":
        view.setInt32(at, saturate("i32", x), true);
        at += 4;
        break;
      case "i8":
        view.setInt8(at, saturate("i8", x));
        at += 1;
        break;
      case "u8":
        view.setUint8(at, saturate("u8", x));
        at += 1;
        break;
      case "bool":
        view.setUint8(at, x !== 0 && !Number.isNaN(x) ? 1 : 0);
        at += 1;
        break;
    }
  }
  return at;
}

/**
 * Writes to a temporary file next to `file`, then renames it over `file`: a crash or error
 * midway leaves either the old file or the new one, never half of one, and an interrupt
 * (SIGINT, SIGTERM) waits for the rename, so no temporary file is left behind.
 */
export function writeSafetensors(file: string, tensors: TensorSet, metadata?: Record<string, string>): void {
  const bytes = serializeSafetensors(tensors, metadata);
  const temp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  withSignalsDeferred(() => {
    try {
      fs.writeFileSync(temp, bytes, { flag: "wx" });
      fs.renameSync(temp, file);
    } catch (e) {
      fs.rmSync(temp, { force: true });
      throw new Diagnostic(`${file}: cannot write (${(e as Error).message})`);
    }
  });
}
