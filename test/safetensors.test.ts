import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Diagnostic } from "../common/diagnostic.ts";
import { type HostTensor, tensor } from "../compiler/ir/tensor.ts";
import { SAFETENSORS_SAMPLES } from "./support/weights.ts";
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from "../runtime/safetensors.ts";

/** A file laid out byte by byte as the reference writer would: u64 length, JSON, data. */
function handBuilt(headerJson: string, data: number[] = [], pad = true): Uint8Array {
  const padded = pad ? headerJson + " ".repeat((8 - (headerJson.length % 8)) % 8) : headerJson;
  const header = new TextEncoder().encode(padded);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

function rejection(bytes: Uint8Array): string {
  try {
    parseSafetensors(bytes, "w.safetensors");
  } catch (e) {
    expect(e).toBeInstanceOf(Diagnostic);
    return (e as Diagnostic).message;
  }
  throw new Error("expected a Diagnostic");
}

function entry(dtype: string, shape: unknown, offsets: unknown): string {
  return JSON.stringify({ t: { dtype, shape, data_offsets: offsets } });
}

describe("safetensors round trip", () => {
  const samples = SAFETENSORS_SAMPLES;

  it("keeps every dtype's values, shapes and dtypes exactly", () => {
    const bytes = serializeSafetensors(samples, { format: "pt" });
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({ format: "pt" });
    expect([...tensors.keys()].sort()).toEqual(Object.keys(samples).sort());
    for (const [name, t] of Object.entries(samples)) {
      const back = tensors.get(name)!;
      expect(back.dtype, name).toBe(t.dtype);
      expect(back.shape, name).toEqual(t.shape);
      expect([...back.data], name).toEqual([...t.data]);
    }
  });

  it("accepts a Map as well as a record, and round-trips through a file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "difftc-st-"));
    try {
      const file = path.join(dir, "w.safetensors");
      writeSafetensors(file, new Map(Object.entries(samples)));
      const { tensors } = readSafetensors(file);
      expect([...tensors.get("f16")!.data]).toEqual([...samples.f16.data]);
      expect(fs.readdirSync(dir)).toEqual(["w.safetensors"]);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  it("pads the header with spaces to a multiple of 8 and lays tensors out by name", () => {
    const bytes = serializeSafetensors({ b: tensor("u8", [1], [9]), a: tensor("u8", [2], [7, 8]) });
    const headerLength = new DataView(bytes.buffer).getUint32(0, true);
    expect(headerLength % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(header.trimEnd()).toBe(
      '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}',
    );
    expect(header.slice(header.trimEnd().length)).toMatch(/^ *$/);
    expect([...bytes.subarray(8 + headerLength)]).toEqual([7, 8, 9]);
  });

  it("writes the same bytes as the reference writer for a small f32 tensor", () => {
    // safetensors.numpy.save({"a": np.array([1, 2], np.float32)}): 53 bytes of JSON + 3 spaces.
    const expected = handBuilt('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
    expect(expected.length).toBe(8 + 56 + 8);
    expect(serializeSafetensors({ a: tensor("f32", [2], [1, 2]) })).toEqual(expected);
  });

  it("reads a hand-built file with metadata, mixed dtypes and a zero-sized tensor", () => {
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' +
      '"e":{"dtype":"I32","shape":[0],"data_offsets":[4,4]},' +
      '"lam":{"dtype":"BF16","shape":[],"data_offsets":[4,6]},' +
      '"ids":{"dtype":"I8","shape":[2],"data_offsets":[6,8]},' +
      '"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}';
    // F16 1.0 = 0x3c00, F16 -2 = 0xc000, BF16 0.5 = 0x3f00, I8 -1 and 5, F64 0.1.
    const f64 = new Uint8Array(new Float64Array([0.1]).buffer);
    const bytes = handBuilt(json, [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x3f, 0xff, 0x05, ...f64]);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({ format: "pt" });
    expect(tensors.get("w")).toEqual(tensor("f16", [2], [1, -2]));
    expect(tensors.get("e")).toEqual(tensor("i32", [0]));
    expect(tensors.get("lam")).toEqual(tensor("bf16", [], [0.5]));
    expect(tensors.get("ids")).toEqual(tensor("i8", [2], [-1, 5]));
    expect(tensors.get("d")).toEqual(tensor("f32", [1], [Math.fround(0.1)]));
  });

  it("reads an unpadded header and a subarray with a nonzero byteOffset", () => {
    const file = handBuilt(entry("U8", [1], [0, 1]), [42], false);
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    expect([...parseSafetensors(shifted.subarray(3)).tensors.get("t")!.data]).toEqual([42]);
  });

  it("keeps a tensor named __proto__ as an ordinary tensor", () => {
    const bytes = serializeSafetensors(new Map([["__proto__", tensor("u8", [1], [3])]]));
    expect([...parseSafetensors(bytes).tensors.keys()]).toEqual(["__proto__"]);
  });
});

describe("safetensors rejects bad files with a message naming the file", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["a file shorter than 8 bytes", new Uint8Array(5), /^w\.safetensors: file is 5 bytes, shorter than/],
    [
      "a header length past the end",
      (() => {
        const b = handBuilt("{}", new Array(104).fill(0));
        new DataView(b.buffer).setUint32(0, 999999, true);
        return b;
      })(),
      /^w\.safetensors: header length 999999 runs past the end of the file \(120 bytes\)$/,
    ],
    [
      "a header over 100 MB",
      (() => {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setUint32(4, 1, true); // 2^32
        return b;
      })(),
      /^w\.safetensors: header length 4294967296 is over the 100000000-byte limit$/,
    ],
    ["a header that is not UTF-8", (() => {
      const b = handBuilt('{"x":1}  ');
      b[9] = 0xff;
      return b;
    })(), /^w\.safetensors: header is not valid UTF-8 JSON/],
    ["a header that is not JSON", handBuilt("{nope"), /^w\.safetensors: header is not valid UTF-8 JSON/],
    ["a header that is not an object", handBuilt("[1, 2]"), /^w\.safetensors: header is not a JSON object$/],
    ["an entry that is not an object", handBuilt('{"t":3}'), /tensor "t" is not a JSON object$/],
    ["metadata that is not strings", handBuilt('{"__metadata__":{"v":1}}'), /__metadata__ value "v" is not a string$/],
    ["an entry without dtype", handBuilt('{"t":{"shape":[],"data_offsets":[0,0]}}'), /tensor "t" has no dtype$/],
    ["an entry without shape", handBuilt('{"t":{"dtype":"F32","data_offsets":[0,0]}}'), /tensor "t" has no shape$/],
    ["an entry without data_offsets", handBuilt('{"t":{"dtype":"F32","shape":[]}}'), /tensor "t" has no data_offsets$/],
    ["an unknown dtype", handBuilt(entry("F8_E4M3", [1], [0, 1]), [0]), /tensor "t" has unknown dtype "F8_E4M3" \(supported: F32/],
    ["a negative size", handBuilt(entry("U8", [-1], [0, 0])), /tensor "t" has shape \[-1\]; sizes must be non-negative integers$/],
    ["a fractional size", handBuilt(entry("U8", [1.5], [0, 0])), /has shape \[1\.5\]; sizes must be/],
    ["a shape that is not a list", handBuilt(entry("U8", "2", [0, 0])), /has shape "2"; sizes must be/],
    ["offsets that are not a pair", handBuilt(entry("U8", [1], [0])), /data_offsets \[0\]; expected two non-negative integers$/],
    ["negative offsets", handBuilt(entry("U8", [0], [-1, -1])), /data_offsets \[-1,-1\]; expected two/],
    ["reversed offsets", handBuilt(entry("U8", [0], [4, 2]), [0, 0, 0, 0]), /tensor "t" has reversed data_offsets \[4, 2\]$/],
    [
      "offsets past the data",
      handBuilt(entry("F32", [4], [0, 16]), [0, 0, 0, 0]),
      /tensor "t" data_offsets \[0, 16\] run past the end of the data \(4 bytes\)$/,
    ],
    ["a byte count that does not match", handBuilt(entry("F32", [2, 2], [0, 12]), new Array(12).fill(0)), /tensor "t" has 12 bytes but F32\[2, 2\] needs 16$/],
    [
      "overlapping tensors",
      handBuilt(
        '{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}',
        new Array(12).fill(0),
      ),
      /tensor "b" \(bytes 4\.\.12\) overlaps tensor "a" \(bytes 0\.\.8\)$/,
    ],
  ];
  it.each(cases)("%s", (_what, bytes, message) => {
    expect(rejection(bytes)).toMatch(message);
  });

  it("accepts data_offsets ending exactly at the end of the file, and rejects one byte past it", () => {
    // Two tensors, the second one's bytes the file's last: valid as the reference reader has it.
    const json = (end: number) => `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[${end - 2}],"data_offsets":[2,${end}]}}`;
    const exact = handBuilt(json(5), [1, 2, 3, 4, 5]);
    expect(exact.length).toBe(8 + new DataView(exact.buffer).getUint32(0, true) + 5);
    const { tensors } = parseSafetensors(exact, "w.safetensors");
    expect([...tensors.get("a")!.data]).toEqual([1, 2]);
    expect([...tensors.get("b")!.data]).toEqual([3, 4, 5]);
    expect(rejection(handBuilt(json(6), [1, 2, 3, 4, 5]))).toMatch(/^w\.safetensors: tensor "b" data_offsets \[2, 6\] run past the end of the data \(5 bytes\)$/);
    // An empty tensor may sit exactly at the end, not one byte past it.
    expect([...parseSafetensors(handBuilt(entry("U8", [0], [3, 3]), [7, 8, 9])).tensors.get("t")!.shape]).toEqual([0]);
    expect(rejection(handBuilt(entry("U8", [0], [4, 4]), [7, 8, 9]))).toMatch(/tensor "t" data_offsets \[4, 4\] run past the end of the data \(3 bytes\)$/);
  });

  it("reports an unreadable path as a Diagnostic", () => {
    expect(() => readSafetensors("/nonexistent/w.safetensors")).toThrow(/^cannot read \/nonexistent\/w\.safetensors: no such file$/);
  });
});

describe("safetensors parsing never throws anything but a Diagnostic", () => {
  function parsesOrDiagnoses(bytes: Uint8Array): void {
    try {
      parseSafetensors(bytes, "fuzz.safetensors");
    } catch (e) {
      if (!(e instanceof Diagnostic)) throw e;
      expect(e.message.startsWith("fuzz.safetensors: ")).toBe(true);
    }
  }

  const valid = serializeSafetensors(
    { a: tensor("f32", [2, 2], [1, 2, 3, 4]), b: tensor("bf16", [3], [1, 2, 3]), c: tensor("bool", [2], [1, 0]) },
    { format: "pt" },
  );

  it("on random bytes, including ones that start with a plausible header length", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(200), (tail, length) => {
        parsesOrDiagnoses(tail);
        const withLength = new Uint8Array(8 + tail.length);
        new DataView(withLength.buffer).setUint32(0, length, true);
        withLength.set(tail, 8);
        parsesOrDiagnoses(withLength);
      }),
      { numRuns: 500 },
    );
  });

  it("on mutations and truncations of a valid file", () => {
    const mutation = fc.record({
      edits: fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.nat(valid.length),
    });
    fc.assert(
      fc.property(mutation, ({ edits, cut }) => {
        const bytes = valid.slice();
        for (const [at, value] of edits) bytes[at] = value;
        parsesOrDiagnoses(bytes);
        parsesOrDiagnoses(bytes.subarray(0, cut));
      }),
      { numRuns: 1000 },
    );
  });

  it("on random headers built from plausible pieces", () => {
    const value = fc.oneof(
      fc.constantFrom("F32", "F16", "BOOL", "X", -1, 1.5, 1e300, null, [], {}),
      fc.array(fc.oneof(fc.nat(20), fc.integer({ min: -3, max: 3 }), fc.constant(1e20)), { maxLength: 3 }),
    );
    const header = fc.dictionary(
      fc.constantFrom("a", "b", "__metadata__", "__proto__"),
      fc.oneof(value, fc.record({ dtype: value, shape: value, data_offsets: value }, { requiredKeys: [] })),
    );
    fc.assert(
      fc.property(header, fc.nat(64), (h, dataLength) => {
        parsesOrDiagnoses(handBuilt(JSON.stringify(h), new Array(dataLength).fill(1)));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("writeSafetensors replaces the output atomically", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "difftc-st-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("leaves no file behind when serialization throws", () => {
    const file = path.join(dir, "w.safetensors");
    const broken = { dtype: "f32", shape: [4], data: new Float64Array(2) } as HostTensor;
    expect(() => writeSafetensors(file, { broken })).toThrow();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("leaves an existing file intact when serialization throws", () => {
    const file = path.join(dir, "w.safetensors");
    writeSafetensors(file, { a: tensor("i32", [1], [5]) });
    const before = fs.readFileSync(file);
    expect(() => writeSafetensors(file, { __metadata__: tensor("u8", [0]) })).toThrow(Diagnostic);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.readdirSync(dir)).toEqual(["w.safetensors"]);
  });

  it("removes its temporary file when the rename fails", () => {
    // Renaming a file over a non-empty directory fails (EISDIR) after the data is written.
    const target = path.join(dir, "w.safetensors");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "keep"), "x");
    expect(() => writeSafetensors(target, { a: tensor("u8", [1], [1]) })).toThrow(/w\.safetensors: cannot write/);
    expect(fs.readdirSync(dir)).toEqual(["w.safetensors"]);
    expect(fs.readFileSync(path.join(target, "keep"), "utf8")).toBe("x");
  });

  it("reports a missing directory as a Diagnostic and creates nothing", () => {
    const file = path.join(dir, "missing", "w.safetensors");
    expect(() => writeSafetensors(file, { a: tensor("u8", [1], [1]) })).toThrow(Diagnostic);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
