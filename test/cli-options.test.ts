// The command line's rough edges, each pinned down: --version, --set of every parameter kind,
// options that do not apply, the inputs command (int64 token ids, unknown inputs), --time.
import { readFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { COMPILER_VERSION } from "../backends/common/manifest.ts";
import { parseSet } from "../cli/main.ts";
import { Progress } from "../cli/progress.ts";
import { Diagnostic } from "../common/diagnostic.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { cli } from "./support/cli.ts";

const work = mkdtempSync(join(tmpdir(), "difftc-cli-options-"));

/** A safetensors file holding one I64 tensor: PyTorch's dtype for token ids. */
function int64File(name: string, values: bigint[]): string {
  const json = JSON.stringify({ [name]: { dtype: "I64", shape: [values.length], data_offsets: [0, 8 * values.length] } });
  const header = json.padEnd(Math.ceil(json.length / 8) * 8);
  const bytes = new Uint8Array(8 + header.length + 8 * values.length);
  new DataView(bytes.buffer).setUint32(0, header.length, true);
  bytes.set(new TextEncoder().encode(header), 8);
  new BigInt64Array(bytes.buffer, 8 + header.length).set(values);
  const file = join(work, `${name}-${values.length}-${values[0]}.safetensors`);
  writeFileSync(file, bytes);
  return file;
}

describe("--version", () => {
  it("prints the version package.json declares, which artifacts record too", async () => {
    const version = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
    expect(COMPILER_VERSION).toBe(version);
    expect(await cli("--version")).toEqual({ code: 0, out: `difftc ${version}`, err: "" });
  });
});

describe("--set takes every kind of model parameter", () => {
  it("numbers, true and false, strings bare or quoted", () => {
    expect(parseSet(["D=64", "eps=1e-6", "causal=false", "on=true", "pairing=halves", 'name="1"', "x=-0.5"])).toEqual(
      new Map<string, unknown>([["D", 64], ["eps", 1e-6], ["causal", false], ["on", true], ["pairing", "halves"], ["name", "1"], ["x", -0.5]]),
    );
  });

  it("refuses an empty value (N= is not N = 0) and a key given twice", () => {
    for (const bad of ["N= ", "N=", "=3", "N"]) expect(() => parseSet([bad]), bad).toThrow(Diagnostic);
    expect(() => parseSet(["N=1", "N=2"])).toThrow(/gives N twice/);
  });

  it("takes any name the DSL does: dim Ñ is set with --set Ñ=2", async () => {
    const file = join(work, "unicode.dt");
    writeFileSync(file, "model M {\n  dim Ñ\n  input x: f32[Ñ]\n  output y = x * 2\n}\n");
    const r = await cli("run", file, "--set", "Ñ=2");
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^y: f32\[2\]/);
  });

  it("sets a boolean parameter of a model (Attention's causal)", async () => {
    const r = await cli("check", "examples/diff_attention.dt", "--model", "Attention", "--set", "D=32", "--set", "causal=false");
    expect(r.out).toMatch(/^model Attention\(D = 32, H = 8, Hkv = 8, causal = false\)/);
  });

  it("a dim takes only a size", async () => {
    expect((await cli("check", "examples/diff_attention.dt", "--set", "N=big")).err).toBe('error: dim N is a size: it takes a non-negative integer, got "big"');
  });

  it("an unknown key lists the parameters and the dims; an unknown model lists the models", async () => {
    expect((await cli("check", "examples/diff_attention.dt", "--set", "n=64")).err).toBe(
      "error: model DiffAttention has no parameter or dim n (it has parameters D, H, Hkv, layer; dims N)\n  note: did you mean N?",
    );
    expect((await cli("check", "examples/diff_attention.dt", "--model", "Nope")).err).toMatch(
      /^error: no model named Nope in examples\/diff_attention\.dt\n {2}note: examples\/diff_attention\.dt defines DiffAttention, Linear; the standard library Linear, RMSNorm, /,
    );
  });
});

describe("an option that does not apply is an error, never ignored", () => {
  it("on a command that takes no such option", async () => {
    expect((await cli("check", "examples/diff_attention.dt", "--seed", "3")).err).toBe("error: --seed does not apply to difftc check; see difftc check --help");
    expect((await cli("compile", "examples/diff_attention.dt", "--weights", "w.safetensors", "-o", join(work, "x"))).err).toBe("error: --weights does not apply to difftc compile; see difftc compile --help");
  });

  it("on a compiled artifact: --model and the pass options", async () => {
    const dir = join(work, "artifact");
    expect((await cli("compile", "examples/diff_attention.dt", "--set", "D=32", "--set", "H=2", "-o", dir)).code).toBe(0);
    for (const args of [["--model", "Linear"], ["--passes", "none"], ["--print-after-all"]])
      expect((await cli("run", dir, ...args, "--set", "N=4")).err).toMatch(new RegExp(`^error: ${args[0]} does not apply to a compiled artifact`));
    expect((await cli("run", dir, "--set", "N=4")).code).toBe(0);
  });
});

describe("difftc inputs", () => {
  it("writes seeded random inputs that difftc run reads back", async () => {
    const file = join(work, "in.safetensors");
    const r = await cli("inputs", "examples/diff_lm.dt", "--set", "N=5", "--set", "L=1", "--seed", "4", "-o", file);
    expect(r.out).toBe(`wrote tokens i32[5] to ${file}`);
    const { tensors, metadata } = readSafetensors(file);
    expect(tensors.get("tokens")!.data.every((t) => t >= 0 && t < 256)).toBe(true);
    expect(metadata).toEqual({ model: "DiffLM", seed: "4" });
    expect((await cli("run", "examples/diff_lm.dt", "--set", "L=1", "--inputs", file)).out).toMatch(/^logits: f32\[5, 256\]/);
    expect((await cli("inputs", "examples/diff_lm.dt", "-o", file)).err).toBe("error: random inputs need a size for N: pass --set N=SIZE (or --inputs FILE)");
  });

  it("int64 token ids, as PyTorch saves them, are read within i32's range", async () => {
    const ok = await cli("run", "examples/diff_lm.dt", "--set", "L=1", "--inputs", int64File("tokens", [1n, 2n, 255n]));
    expect(ok.err).toBe("");
    expect(ok.out).toMatch(/^logits: f32\[3, 256\]/);
    const big = await cli("run", "examples/diff_lm.dt", "--set", "L=1", "--inputs", int64File("tokens", [1n, 2n ** 40n]));
    expect(big.err).toMatch(/tensor "tokens" holds 1099511627776 at index 1, outside i32/);
  });

  it("an input the model does not have is an error", async () => {
    const r = await cli("run", "examples/diff_lm.dt", "--set", "L=1", "--inputs", int64File("token_ids", [1n]));
    expect(r.err).toBe("error: model DiffLM has no input token_ids (its inputs: tokens)");
  });
});

describe("--time", () => {
  it("prints one line of every step's time on stderr", async () => {
    const r = await cli("run", "examples/diff_attention.dt", "--set", "D=32", "--set", "H=2", "--set", "N=4", "--backend", "js", "--time");
    expect(r.err).toMatch(/^time: elaborate \d+\.\d{3} s, init weights \d+\.\d{3} s, compile \d+\.\d{3} s, load \d+\.\d{3} s, run /);
    expect(r.err).toMatch(/run \d+\.\d{3} s; total \d+\.\d{3} s$/);
  });
});

describe("progress on a terminal", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  function stderr(): string[] {
    const writes: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => writes.push(String(s)) > 0);
    return writes;
  }

  it("shows a step's progress once it has taken two seconds, then its time", async () => {
    vi.useFakeTimers({ toFake: ["performance", "setInterval", "clearInterval"] });
    const writes = stderr();
    await new Progress(true, false).step("init weights", (tick) => {
      tick(1, 4);
      vi.advanceTimersByTime(2500);
      tick(2, 4);
    });
    // Redrawn every 250 ms from two seconds on (at most every 200 ms), then the step's time.
    expect(writes).toEqual(["\r\x1b[Kinit weights... 25% 2.0 s", "\r\x1b[Kinit weights... 25% 2.3 s", "\r\x1b[Kinit weights... 25% 2.5 s", "\r\x1b[Kinit weights: 2.5 s\n"]);
  });

  it("says nothing of a quick step, nor anything when stderr is not a terminal", async () => {
    vi.useFakeTimers({ toFake: ["performance", "setInterval", "clearInterval"] });
    const writes = stderr();
    await new Progress(true, false).step("quick", (tick) => tick(1, 1));
    await new Progress(false, false).step("long", () => void vi.advanceTimersByTime(5000));
    expect(writes).toEqual([]);
  });
});
