// Bad input files and odd source text end in a diagnostic: devices and FIFOs are not read,
// oversized sources are refused, Unicode separators are whitespace, escape sequences never reach
// the terminal, and values that would compute nonsense (negative split sizes, NaN initialisers,
// a tensor named twice) are rejected.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { closest } from "../../compiler/elaborate/values.ts";
import { parseProgram, readSource } from "../../dsl/parse.ts";
import { parseSafetensors, readSafetensors, serializeSafetensors } from "../../runtime/safetensors.ts";
import { compileSource, diagnose } from "../support/dsl.ts";

const BIN = new URL("../../bin/difftc.mjs", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "difftc-inputs-"));

function safetensorsWithHeader(header: string, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const bytes = new Uint8Array(8 + json.length + dataBytes);
  new DataView(bytes.buffer).setUint32(0, json.length, true);
  bytes.set(json, 8);
  return bytes;
}

describe("files that are not model sources", () => {
  it("/dev/zero is refused without being read", () => {
    expect(() => readSource("/dev/zero")).toThrow(/^\/dev\/zero is not a regular file \(a device, FIFO or socket\)/);
    expect(() => readSafetensors("/dev/zero")).toThrow(/^\/dev\/zero is not a regular file/);
    const r = spawnSync(process.execPath, [BIN, "check", "/dev/zero"], { encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).toBe("error: /dev/zero is not a regular file (a device, FIFO or socket); a model source is read only from a regular file\n");
    expect(r.status).toBe(1);
  });

  it("a FIFO with no writer is refused at once", () => {
    const fifo = join(work, "pipe.dt");
    execFileSync("mkfifo", [fifo]);
    expect(() => readSource(fifo)).toThrow(/is not a regular file/);
  });

  it("a source past the size limit is refused before parsing", () => {
    const path = join(work, "big.dt");
    writeFileSync(path, " ".repeat(256 * 1024 + 1));
    expect(() => readSource(path)).toThrow(`${path} is 262,145 bytes, more than the 262,144 bytes a model source may be`);
    expect(() => parseProgram(" ".repeat(300_000), "big.dt")).toThrow("big.dt is 300,000 bytes, more than the 262,144 bytes a model source may be");
  });

  it("a directory is named as one", () => {
    expect(() => readSource(work)).toThrow(`${work} is a directory, not a model source`);
  });
});

describe("source text", () => {
  it("a byte-order mark and the Unicode line separators are whitespace", () => {
    const graph = compileSource("\uFEFFmodel M {\u2028 input x: f32[4]\u2029 output y = x\u00A0+ 1 }");
    expect(graph.outputs.map((o) => o.name)).toEqual(["y"]);
  });

  it("escape sequences in a source line or a name never reach the terminal", () => {
    const d = diagnose('model M { input x: f32[4] output y = x + "\u001b]0;owned\u0007" \u202e }');
    expect(d.text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(d.text).toContain("\ufffd]0;owned\ufffd");
    const named = new Diagnostic("file \u001b[2J");
    expect(named.format()).toBe("error: file \\u001b[2J");
  });

  it('"did you mean" is not computed for very long names', () => {
    const long = "a".repeat(100_000);
    expect(closest(long, [`${long}b`])).toBeUndefined();
    expect(closest("softmx", ["softmax", "a".repeat(100_000)])).toBe("softmax");
    const d = diagnose(`model M { input ${long}: f32[4] output y = ${long}b }`);
    expect(d.message).toMatch(/^unknown name a+b$/);
    expect(d.text).not.toContain("did you mean");
  });
});

describe("values that would compute nonsense", () => {
  it("split with a negative size is a diagnostic, not overlapping pieces", () => {
    expect(diagnose("model M { input x: f32[2, 4] let (a, b, c) = split(x, [6, -4, 2]) output y = a }").message).toBe("split: sizes [6, -4, 2] include -4; a size must not be negative");
  });

  it.each([
    ["normal(0, -1)", "normal: the standard deviation must not be negative, got -1"],
    ["normal(0, 0 / 0.0)", "normal: its arguments must be finite numbers, got NaN"],
    ["normal(0, inf)", "normal: its arguments must be finite numbers, got Infinity"],
    ["uniform(1, -1)", "uniform: the low end 1 is above the high end -1"],
    ["constant(-inf)", "constant: its arguments must be finite numbers, got -Infinity"],
  ])("the initialiser %s is rejected", (init, message) => {
    expect(diagnose(`model M { input x: f32[4] param w: f32[4] ~ ${init} output y = x * w }`).message).toBe(message);
  });

  it("an empty param's initialiser is never drawn from, so Linear at IN = 0 still elaborates", () => {
    expect(compileSource("model M { dim N input x: f32[N, 0] sub l = Linear(0, 3) output y = l(x) }").outputs).toHaveLength(1);
  });

  it("a safetensors header that names a tensor twice is rejected", () => {
    const twice = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(() => parseSafetensors(safetensorsWithHeader(twice, 8), "w.safetensors")).toThrow('w.safetensors: the header names "w" twice');
    const escaped = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(() => parseSafetensors(safetensorsWithHeader(escaped, 8), "w.safetensors")).toThrow('names "w" twice');
    const field = '{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}';
    expect(() => parseSafetensors(safetensorsWithHeader(field, 4), "w.safetensors")).toThrow('names "dtype" twice');
  });

  it("safetensors tensors are decoded when first used, once", () => {
    const header = '{"used":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"unused":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}';
    const bytes = safetensorsWithHeader(header, 6);
    bytes.set([7, 9], bytes.length - 6);
    const { tensors } = parseSafetensors(bytes);
    expect(Object.getOwnPropertyDescriptor(tensors.get("unused")!, "data")?.get).toBeTypeOf("function");
    const used = tensors.get("used")!;
    expect([...used.data]).toEqual([7, 9]);
    expect(used.data).toBe(used.data);
  });

  it("a tensor passed on undecoded is written as its file's bytes; a decoded one from its values", () => {
    const header = '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"I8","shape":[3],"data_offsets":[4,7]}}';
    const bytes = safetensorsWithHeader(header, 7);
    bytes.set([0x00, 0x3c, 0x00, 0xc0, 1, 0xff, 7], bytes.length - 7);
    const { tensors } = parseSafetensors(bytes);
    expect(serializeSafetensors(tensors).subarray(-7)).toEqual(bytes.subarray(-7));
    tensors.get("b")!.data[0] = 5;
    expect([...serializeSafetensors(tensors).subarray(-3)]).toEqual([5, 0xff, 7]);
    expect([...tensors.get("a")!.data]).toEqual([1, -2]);
  });
});
