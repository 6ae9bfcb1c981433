// The C safetensors reader and writer of the CUDA runner (backends/cuda/runtime/difftc_safetensors.h)
// against the TypeScript one (runtime/safetensors.ts): files cross in both directions with equal
// contents, and corrupt or fuzzed files are refused with a message, never a crash (the test
// program is built with AddressSanitizer and UBSan where gcc has them). The header must also
// compile as C++17 and as CUDA, since the generated runner.cu includes it.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from "../../compiler/ir/numeric.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import { SAFETENSORS_SAMPLES } from "../support/weights.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { parseSafetensors, readSafetensors, serializeSafetensors } from "../../runtime/safetensors.ts";

const HEADER_DIR = new URL("../../backends/cuda/runtime/", import.meta.url).pathname;

const findTool = (name: string, ...more: string[]): string | undefined =>
  [...more, ...(process.env.PATH ?? "").split(":").map((d) => join(d, name))].find((p) => existsSync(p));

/** Missing tools fail on CI and skip loudly elsewhere, as everywhere in the suite. */
function missing(what: string): void {
  if (process.env.CI === "true") throw new Error(`${what} is missing on CI: the C safetensors checks cannot run`);
  console.warn(`\n*** ${what} not found: the C safetensors checks did NOT run ***\n`);
}

// The test program. Modes:
//   dump FILE...          each file's tensors: "file COUNT", then per tensor
//                         "n=HEXNAME DTYPE [d0,d1] OFFSET NBYTES : values" (f16/bf16 as bits)
//   check LIST            one line per path in LIST: "OK" and "HEXNAME:DTYPE:d0,d1:OFFSET:NBYTES:SUM"
//                         per tensor, or "ERR RC MESSAGE"; exits 0 unless something is inconsistent
//   copy IN OUT ...       reads each IN and writes its tensors to OUT with dt_write
//   write OUT             writes a fixed set of tensors (mirrored by FIXED below)
//   badwrite DIR          bad dt_write calls, one "RC MESSAGE" line each
const PROGRAM = String.raw`
#include "difftc_safetensors.h"

static void hexname(const char *s) {
  for (; *s; s++) printf("%02x", (unsigned char)*s);
}

static void shape(const dt_tensor *t, const char *sep) {
  int k;
  for (k = 0; k < t->rank; k++) printf("%s%lld", k ? sep : "", (long long)t->shape[k]);
}

static int dump(const char *path) {
  dt_file f;
  char err[1024];
  int i, rc = dt_read(path, &f, err, sizeof err);
  if (rc) {
    fprintf(stderr, "error: %s\n", err);
    return rc;
  }
  printf("file %d\n", f.count);
  for (i = 0; i < f.count; i++) {
    const dt_tensor *t = &f.tensors[i];
    unsigned char *buf = (unsigned char *)malloc(t->nbytes + 8);
    size_t e;
    if (dt_find(&f, t->name) != t) { fprintf(stderr, "dt_find lost %s\n", t->name); exit(99); }
    memcpy(buf, dt_data(&f, t), t->nbytes);
    printf("n=");
    hexname(t->name);
    printf(" %s [", dt_dtype_name(t->dtype));
    shape(t, ",");
    printf("] %zu %zu :", t->offset_bytes, t->nbytes);
    for (e = 0; e < t->numel; e++) {
      switch (t->dtype) {
        case DT_F32: printf(" %.9g", (double)((float *)buf)[e]); break;
        case DT_F64: printf(" %.17g", ((double *)buf)[e]); break;
        case DT_F16: case DT_BF16: printf(" %u", (unsigned)((uint16_t *)buf)[e]); break;
        case DT_I32: printf(" %d", (int)((int32_t *)buf)[e]); break;
        case DT_I64: printf(" %lld", (long long)((int64_t *)buf)[e]); break;
        case DT_I8: printf(" %d", (int)((int8_t *)buf)[e]); break;
        default: printf(" %u", (unsigned)buf[e]); break;
      }
    }
    printf("\n");
    free(buf);
  }
  if (dt_find(&f, "no such tensor") != NULL) { fprintf(stderr, "dt_find found a ghost\n"); exit(99); }
  dt_free(&f);
  dt_free(&f);
  return 0;
}

static int check(const char *list) {
  static char line[8192];
  FILE *in = fopen(list, "r");
  if (!in) { perror(list); return 98; }
  while (fgets(line, sizeof line, in)) {
    dt_file f;
    char err[1024];
    int i, rc;
    line[strcspn(line, "\n")] = '\0';
    memset(err, 'x', sizeof err);
    rc = dt_read(line, &f, err, sizeof err);
    if (rc) {
      if (rc < 1 || rc > 3 || strncmp(err, line, strlen(line)) != 0 || f.bytes || f.tensors || f.count) {
        fprintf(stderr, "%s: bad failure %d %s\n", line, rc, err);
        return 97;
      }
      printf("ERR %d %s\n", rc, err);
      continue;
    }
    printf("OK");
    for (i = 0; i < f.count; i++) {
      const dt_tensor *t = &f.tensors[i];
      const unsigned char *p = (const unsigned char *)dt_data(&f, t);
      unsigned long long sum = 0;
      size_t b;
      for (b = 0; b < t->nbytes; b++) sum = sum * 31 + p[b];
      if (dt_find(&f, t->name) != t || t->nbytes != t->numel * dt_dtype_size(t->dtype)) {
        fprintf(stderr, "%s: inconsistent tensor %s\n", line, t->name);
        return 96;
      }
      printf(" ");
      hexname(t->name);
      printf(":%s:", dt_dtype_name(t->dtype));
      shape(t, ",");
      printf(":%zu:%zu:%llu", t->offset_bytes, t->nbytes, sum);
    }
    printf("\n");
    dt_free(&f);
  }
  fclose(in);
  return 0;
}

static int copy(const char *from, const char *to) {
  dt_file f;
  char err[1024];
  const char **names;
  int *dtypes, *ranks, i, rc = dt_read(from, &f, err, sizeof err);
  const int64_t **shapes;
  const void **data;
  if (rc) { fprintf(stderr, "error: %s\n", err); return rc; }
  names = (const char **)malloc(((size_t)f.count + 1) * sizeof *names);
  dtypes = (int *)malloc(((size_t)f.count + 1) * sizeof *dtypes);
  ranks = (int *)malloc(((size_t)f.count + 1) * sizeof *ranks);
  shapes = (const int64_t **)malloc(((size_t)f.count + 1) * sizeof *shapes);
  data = (const void **)malloc(((size_t)f.count + 1) * sizeof *data);
  for (i = 0; i < f.count; i++) {
    names[i] = f.tensors[i].name;
    dtypes[i] = f.tensors[i].dtype;
    ranks[i] = f.tensors[i].rank;
    shapes[i] = f.tensors[i].shape;
    data[i] = dt_data(&f, &f.tensors[i]);
  }
  rc = dt_write(to, f.count, names, dtypes, ranks, shapes, data, err, sizeof err);
  if (rc) fprintf(stderr, "error: %s\n", err);
  free((void *)names); free(dtypes); free(ranks); free((void *)shapes); free((void *)data);
  dt_free(&f);
  return rc;
}

static int write_fixed(const char *path) {
  static const float f32[6] = {0.0f, -0.0f, 1.5f, -3.25f, 0.1f, 3.4028234663852886e38f};
  static const uint16_t f16[4] = {0x3C00, 0xC100, 0x7BFF, 0x0001};
  static const uint16_t bf16[4] = {0x3F80, 0xC049, 0x0001, 0x7F7F};
  static const int32_t i32[3] = {-2147483647 - 1, 2147483647, -1};
  static const int8_t i8[4] = {-128, 127, -1, 0};
  static const uint8_t u8[3] = {0, 255, 7};
  static const uint8_t b[2] = {1, 0};
  static const double f64[2] = {0.1, -2.5};
  static const float scalar = 42.5f, odd = 7.0f;
  static const int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s3[1] = {3}, s21[2] = {2, 1}, s2[1] = {2},
                       s03[2] = {0, 3}, s1[1] = {1};
  const char *names[11] = {"f32", "f16", "bf16", "i32", "i8", "u8", "bool", "f64", "scalar", "empty",
                           "we\"ird\\name\n\xc3\xa9\xf0\x9f\x98\x80 \x01"};
  const int dtypes[11] = {DT_F32, DT_F16, DT_BF16, DT_I32, DT_I8, DT_U8, DT_BOOL, DT_F64, DT_F32, DT_F32, DT_F32};
  const int ranks[11] = {2, 1, 2, 1, 1, 1, 2, 1, 0, 2, 1};
  const int64_t *shapes[11] = {s23, s4, s22, s3, s4, s3, s21, s2, NULL, s03, s1};
  const void *data[11] = {f32, f16, bf16, i32, i8, u8, b, f64, &scalar, NULL, &odd};
  char err[1024];
  int rc = dt_write(path, 11, names, dtypes, ranks, shapes, data, err, sizeof err);
  if (rc) fprintf(stderr, "error: %s\n", err);
  return rc;
}

static void attempt(const char *path, int count, const char *const *names, const int *dtypes, const int *ranks,
                    const int64_t *const *shapes, const void *const *data) {
  char err[1024];
  int rc = dt_write(path, count, names, dtypes, ranks, shapes, data, err, sizeof err);
  printf("%d %s\n", rc, rc ? err : "");
}

static int bad_writes(const char *dir) {
  static const float v[4] = {1, 2, 3, 4};
  static const int64_t s2[1] = {2}, sneg[1] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  char path[4096], nope[4096];
  const char *dup[2] = {"a", "a"}, *meta[1] = {"__metadata__"}, *bad[1] = {"\xff"}, *one[1] = {"a"};
  const int f32x2[2] = {DT_F32, DT_F32}, unknown[1] = {99}, r1x2[2] = {1, 1}, r9[1] = {9};
  const int64_t *sh[2] = {s2, s2}, *shneg[1] = {sneg}, *sh9[1] = {s9};
  const void *d[2] = {v, v + 2}, *dnull[1] = {NULL};
  snprintf(path, sizeof path, "%s/out.safetensors", dir);
  snprintf(nope, sizeof nope, "%s/no/such/dir/out.safetensors", dir);
  attempt(path, 2, dup, f32x2, r1x2, sh, d);
  attempt(path, 1, meta, f32x2, r1x2, sh, d);
  attempt(path, 1, bad, f32x2, r1x2, sh, d);
  attempt(path, 1, one, unknown, r1x2, sh, d);
  attempt(path, 1, one, f32x2, r9, sh9, d);
  attempt(path, 1, one, f32x2, r1x2, shneg, d);
  attempt(path, 1, one, f32x2, r1x2, sh, dnull);
  attempt(path, -1, one, f32x2, r1x2, sh, d);
  attempt(nope, 1, one, f32x2, r1x2, sh, d);
  attempt(dir, 1, one, f32x2, r1x2, sh, d);
  attempt(path, 0, NULL, NULL, NULL, NULL, NULL);
  return 0;
}

int main(int argc, char **argv) {
  int i, rc;
  if (argc >= 3 && strcmp(argv[1], "dump") == 0) {
    for (i = 2; i < argc; i++) if ((rc = dump(argv[i]))) return rc;
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
  if (argc >= 4 && argc % 2 == 0 && strcmp(argv[1], "copy") == 0) {
    for (i = 2; i < argc; i += 2) if ((rc = copy(argv[i], argv[i + 1]))) return rc;
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "write") == 0) return write_fixed(argv[2]);
  if (argc == 3 && strcmp(argv[1], "badwrite") == 0) return bad_writes(argv[2]);
  fprintf(stderr, "usage: dump|check|copy|write|badwrite ...\n");
  return 64;
}
`;

const FILE_DTYPE: Record<DType, string> = { f32: "F32", f16: "F16", bf16: "BF16", i32: "I32", i8: "I8", u8: "U8", bool: "BOOL" };
const hex = (s: string): string => Buffer.from(s, "utf8").toString("hex");
const unhex = (h: string): string => Buffer.from(h, "hex").toString("utf8");

interface CTensor {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  nbytes: number;
  tokens: string[];
}

/** The dump mode's output: one list of tensors per file. */
function parseDump(stdout: string): CTensor[][] {
  const files: CTensor[][] = [];
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("file ")) {
      files.push([]);
      continue;
    }
    const [head, values] = line.split(" :");
    const [name, dtype, shape, offset, nbytes] = head.split(" ");
    files[files.length - 1].push({
      name: unhex(name.slice(2)),
      dtype,
      shape: shape === "[]" ? [] : shape.slice(1, -1).split(",").map(Number),
      offset: Number(offset),
      nbytes: Number(nbytes),
      tokens: values.split(" ").filter((t) => t !== ""),
    });
  }
  return files;
}

/** A printed value as the TypeScript reader decodes it. */
function decode(dtype: string, token: string): number {
  const number = (t: string) => (/^-?nan$/.test(t) ? NaN : t === "inf" ? Infinity : t === "-inf" ? -Infinity : Number(t));
  switch (dtype) {
    case "F16":
      return f16FromBits(Number(token));
    case "BF16":
      return bf16FromBits(Number(token));
    case "F32":
    case "F64":
      return Math.fround(number(token));
    case "BOOL":
      return Number(token) ? 1 : 0;
    default:
      return Number(token);
  }
}

/** The C reader's view of a file equals the TypeScript reader's, value for value. */
function expectSameAsTs(c: CTensor[], bytes: Uint8Array): void {
  const ts = parseSafetensors(bytes);
  expect(c.map((t) => t.name).sort()).toEqual([...ts.tensors.keys()].sort());
  for (const t of c) {
    const want = ts.tensors.get(t.name)!;
    expect(t.dtype, t.name).toBe(FILE_DTYPE[want.dtype]);
    expect(t.shape, t.name).toEqual(want.shape);
    const got = t.tokens.map((tok) => decode(t.dtype, tok));
    expect(got.length, t.name).toBe(want.data.length);
    got.forEach((v, i) => expect(Object.is(v, want.data[i]), `${t.name}[${i}]: C ${v}, TS ${want.data[i]}`).toBe(true));
  }
}

/** A file laid out byte by byte: u64 length (or `length` when given), header, data. */
function handBuilt(header: string | Uint8Array, data: number[] = [], length?: bigint): Uint8Array {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const entry = (name: string, dtype: unknown, shape: unknown, offsets: unknown) =>
  `${JSON.stringify(name)}:{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;

let dir = "";
let prog = "";
let progCxx = "";
let compiled: { name: string; stderr: string }[] = [];
let sanitized = false;
let skipped = false;

function run(bin: string, args: string[]) {
  const r = spawnSync(bin, args, { encoding: "utf8", maxBuffer: 64 << 20, env: { ...process.env, ASAN_OPTIONS: "detect_leaks=1", UBSAN_OPTIONS: "print_stacktrace=1" } });
  if (r.error) throw r.error;
  return r;
}

/** Runs the program and insists it exited 0 with nothing on stderr (no sanitizer report). */
function ok(args: string[], bin = prog): string {
  const r = run(bin, args);
  expect(r.stderr).toBe("");
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  const gcc = findTool("gcc");
  if (!gcc) {
    skipped = true;
    return missing("gcc");
  }
  dir = mkdtempSync(join(tmpdir(), "difftc-safetensors-c-"));
  const source = join(dir, "prog.c");
  writeFileSync(source, PROGRAM);
  const exec = promisify(execFile);
  const warn = ["-Wall", "-Wextra", "-pedantic", "-Werror", "-I", HEADER_DIR];
  // Sanitizers when this gcc has them (libasan/libubsan installed); plain -O1 otherwise.
  const san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
  writeFileSync(join(dir, "probe.c"), "int main(void) { return 0; }\n");
  sanitized = await exec(gcc, [...san, "-o", join(dir, "probe"), join(dir, "probe.c")]).then(
    () => spawnSync(join(dir, "probe")).status === 0,
    () => false,
  );
  if (!sanitized) console.warn("\n*** gcc has no AddressSanitizer/UBSan here: the C safetensors fuzz runs unsanitized ***\n");
  prog = join(dir, "prog");
  progCxx = join(dir, "prog-cxx");
  const jobs: Promise<{ name: string; stderr: string }>[] = [
    exec(gcc, ["-std=c99", "-O1", "-g", ...warn, ...(sanitized ? san : []), "-o", prog, source]).then((r) => ({ name: "gcc -std=c99", stderr: r.stderr })),
  ];
  const gxx = findTool("g++");
  if (gxx) {
    jobs.push(exec(gxx, ["-x", "c++", "-std=c++17", "-O1", ...warn, "-o", progCxx, source]).then((r) => ({ name: "g++ -std=c++17", stderr: r.stderr })));
  } else missing("g++");
  const nvcc = findTool("nvcc", "/usr/local/cuda/bin/nvcc");
  if (nvcc) {
    jobs.push(
      exec(nvcc, ["-x", "cu", "-std=c++17", "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra", "-I", HEADER_DIR, "-c", "-o", join(dir, "prog.o"), source]).then(
        (r) => ({ name: "nvcc -x cu", stderr: r.stderr }),
      ),
    );
  } else missing("nvcc");
  compiled = await Promise.all(jobs);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SAMPLES: Record<string, HostTensor> = {
  ...SAFETENSORS_SAMPLES,
  "w\u00e9ird \"name\"\\\n\u{1F600}": tensor("i8", [1, 1, 1], [5]),
};

describe("the C safetensors header", () => {
  it("compiles as C99 (gcc), C++17 (g++) and CUDA (nvcc -x cu) without a warning", () => {
    if (skipped) return;
    expect(compiled.map((c) => c.name)).toContain("gcc -std=c99");
    for (const c of compiled) expect(c.stderr, c.name).toBe("");
  });

  it("reads what the TypeScript writer wrote, values and shapes exact", () => {
    if (skipped) return;
    const bytes = serializeSafetensors(SAMPLES, { format: "pt" });
    const file = join(dir, "samples.safetensors");
    writeFileSync(file, bytes);
    const [c] = parseDump(ok(["dump", file]));
    expectSameAsTs(c, bytes);
    // The same numbers spelled out, independently of the TypeScript reader.
    const byName = new Map(c.map((t) => [t.name, t]));
    expect(byName.get("f32")!.tokens).toEqual(["0", "-0", "1.5", "-3.25", "0.100000001", "3.40282347e+38"]);
    expect(byName.get("f16")!.tokens.map(Number)).toEqual([0x3c00, 0xc100, 0x7bff, 0x0001, 0xfc00, f16Bits(0.333251953125)]);
    expect(byName.get("bf16")!.tokens.map(Number)).toEqual([0x3f80, 0xc049, 0x0001, 0x7f7f]);
    expect(byName.get("i32")!.tokens).toEqual(["-2147483648", "2147483647", "-1"]);
    expect(byName.get("i8")!.tokens).toEqual(["-128", "127", "-1", "0"]);
    expect(byName.get("u8")!.tokens).toEqual(["0", "255", "7"]);
    expect(byName.get("bool")!).toMatchObject({ shape: [2, 1], tokens: ["1", "0"], nbytes: 2 });
    expect(byName.get("empty")!).toMatchObject({ shape: [0, 3], tokens: [], nbytes: 0 });
    expect(byName.get("scalar")!).toMatchObject({ shape: [], tokens: [String(bf16Bits(-0.5))] });
    expect(byName.get("w\u00e9ird \"name\"\\\n\u{1F600}")!).toMatchObject({ dtype: "I8", shape: [1, 1, 1], tokens: ["5"] });
    // The g++ build reads it the same way.
    if (existsSync(progCxx)) expect(ok(["dump", file], progCxx)).toBe(ok(["dump", file]));
  });

  it("decodes JSON escapes, whitespace, unknown fields and metadata in a hand-written header", () => {
    if (skipped) return;
    const header =
      ' \t\n{ "__metadata__" : { "format" : "pt", "\\u00e9" : "\\ud83d\\ude00" } ,\r\n' +
      ' "\\u0041\\u00e9\\ud83d\\ude00\\"\\\\\\/\\b\\f\\n\\r\\t" : { "extra" : [ { "deep" : [ null, true, false, -1.5e-3 ] } ],' +
      ' "data_offsets" : [ 0 , 4 ] , "shape" : [ ] , "dtype" : "I32" } } \n  ';
    const file = join(dir, "escapes.safetensors");
    writeFileSync(file, handBuilt(header, [1, 2, 3, 4]));
    const [[t]] = parseDump(ok(["dump", file]));
    expect(t).toEqual({ name: "A\u00e9\u{1F600}\"\\/\b\f\n\r\t", dtype: "I32", shape: [], offset: 0, nbytes: 4, tokens: [String(0x04030201)] });
  });

  it("reads random TypeScript-written files as the TypeScript reader does (one process for all)", () => {
    if (skipped) return;
    const name = fc.string({ unit: "binary", maxLength: 6 }).filter((s) => !s.includes("\0") && s !== "__metadata__");
    const values = (dtype: DType) =>
      dtype === "f32"
        ? fc.float()
        : dtype === "f16" || dtype === "bf16"
          ? fc.double()
          : dtype === "i32"
            ? fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })
            : dtype === "i8"
              ? fc.integer({ min: -128, max: 127 })
              : dtype === "u8"
                ? fc.integer({ min: 0, max: 255 })
                : fc.integer({ min: 0, max: 1 });
    const oneTensor = fc
      .record({ dtype: fc.constantFrom<DType>("f32", "f16", "bf16", "i32", "i8", "u8", "bool"), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
      .chain(({ dtype, shape }) => fc.array(values(dtype), { minLength: shape.reduce((a, b) => a * b, 1), maxLength: shape.reduce((a, b) => a * b, 1) }).map((data) => tensor(dtype, shape, data)));
    const fileArb = fc.tuple(fc.uniqueArray(fc.tuple(name, oneTensor), { selector: ([n]) => n, maxLength: 6 }), fc.option(fc.string({ maxLength: 10 })));
    const samples = fc.sample(fileArb, { numRuns: 40, seed: 20250607 });
    const files = samples.map(([tensors, note], i) => {
      const bytes = serializeSafetensors(new Map(tensors), note === null ? undefined : { note });
      const file = join(dir, `random-${i}.safetensors`);
      writeFileSync(file, bytes);
      return { file, bytes };
    });
    const dumped = parseDump(ok(["dump", ...files.map((f) => f.file)]));
    expect(dumped.length).toBe(files.length);
    dumped.forEach((c, i) => expectSameAsTs(c, files[i].bytes));

    // And back: the C writer's copies read by the TypeScript reader hold the same tensors.
    ok(["copy", ...files.flatMap((f) => [f.file, `${f.file}.copy`])]);
    files.forEach(({ file, bytes }) => {
      const original = parseSafetensors(bytes).tensors;
      const copy = readSafetensors(`${file}.copy`).tensors;
      expect(new Map([...copy].sort()), file).toEqual(new Map([...original].sort()));
    });
  });
});

describe("the C safetensors writer", () => {
  it("writes files the TypeScript reader reads back exactly, byte-identical to the TypeScript writer", () => {
    if (skipped) return;
    const out = join(dir, "fixed.safetensors");
    ok(["write", out]);
    const bytes = new Uint8Array(readFileSync(out));
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))).toMatch(/^\{"f32":\{"dtype":"F32","shape":\[2,3\],"data_offsets":\[0,24\]\},.*\} *$/);
    const { tensors } = readSafetensors(out);
    const odd = "we\"ird\\name\n\u00e9\u{1F600} \u0001";
    const expected: Record<string, HostTensor> = {
      f32: tensor("f32", [2, 3], [0, -0, 1.5, -3.25, Math.fround(0.1), Math.fround(3.4028234663852886e38)]),
      f16: tensor("f16", [4], [1, -2.5, 65504, 2 ** -24]),
      bf16: tensor("bf16", [2, 2], [1, -3.140625, bf16FromBits(1), bf16FromBits(0x7f7f)]),
      i32: tensor("i32", [3], [-2147483648, 2147483647, -1]),
      i8: tensor("i8", [4], [-128, 127, -1, 0]),
      u8: tensor("u8", [3], [0, 255, 7]),
      bool: tensor("bool", [2, 1], [1, 0]),
      f64: tensor("f32", [2], [Math.fround(0.1), -2.5]), // the TypeScript reader loads F64 as f32
      scalar: tensor("f32", [], [42.5]),
      empty: tensor("f32", [0, 3]),
      [odd]: tensor("f32", [1], [7]),
    };
    expect(new Map([...tensors].sort())).toEqual(new Map(Object.entries(expected).sort()));
    for (const [name, t] of Object.entries(expected)) {
      tensors.get(name)!.data.forEach((v, i) => expect(Object.is(v, t.data[i]), `${name}[${i}]`).toBe(true));
    }

    // With names in sorted order and no metadata, both writers produce the same bytes.
    const sorted = Object.fromEntries(Object.entries(SAMPLES).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const tsBytes = serializeSafetensors(sorted);
    const tsFile = join(dir, "sorted.safetensors");
    writeFileSync(tsFile, tsBytes);
    ok(["copy", tsFile, `${tsFile}.copy`]);
    expect(Buffer.from(readFileSync(`${tsFile}.copy`)).equals(Buffer.from(tsBytes))).toBe(true);
  });

  it("refuses bad arguments and unwritable paths with a message, leaving no temporary file", () => {
    if (skipped) return;
    const sub = join(dir, "bad");
    mkdirSync(sub);
    mkdirSync(join(sub, "occupied"));
    writeFileSync(join(sub, "occupied", "keep"), "");
    const lines = ok(["badwrite", sub]).split("\n").slice(0, -1);
    const out = join(sub, "out.safetensors");
    const expected: [number, string][] = [
      [4, `${out}: cannot write tensor "a" twice`],
      [4, `${out}: cannot write a tensor named "__metadata__"`],
      [4, "its name is not valid UTF-8"],
      [4, `${out}: cannot write tensor "a": unknown dtype 99`],
      [4, "rank 9 is not 0 .. 8"],
      [4, "size -1 is out of range"],
      [4, `${out}: cannot write tensor "a": its data is NULL`],
      [4, "a negative count"],
      [1, `${join(sub, "no/such/dir/out.safetensors")}: cannot write (`],
      [1, `${sub}: cannot write (renaming`],
      [0, ""],
    ];
    expect(lines.length).toBe(expected.length);
    lines.forEach((line, i) => {
      expect(line.startsWith(`${expected[i][0]} `), line).toBe(true);
      expect(line, line).toContain(expected[i][1]);
    });
    // The last call wrote an empty file; nothing else, and no temporary, is left behind.
    expect(readdirSync(sub).sort()).toEqual(["occupied", "out.safetensors"]);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expect(readSafetensors(out).tensors.size).toBe(0);
  });
});

describe("the C safetensors reader on corrupt files", () => {
  const good = (extra = "") => `{${entry("x", "F32", [2], [0, 8])}${extra}}`;
  const eight = [0, 0, 128, 63, 0, 0, 0, 64];
  const cases: [string, Uint8Array, string][] = [
    ["empty file", new Uint8Array(0), "file is 0 bytes, shorter than the 8-byte header length"],
    ["truncated length", new Uint8Array([8, 0, 0]), "file is 3 bytes"],
    ["huge header length", handBuilt("{}", [], 1n << 62n), "header length 4611686018427387904 is over the 100000000-byte limit"],
    ["header past the end", handBuilt("{}", [], 100n), "header length 100 runs past the end of the file (10 bytes)"],
    ["truncated header", handBuilt(good()).subarray(0, 30), "runs past the end of the file"],
    ["truncated data", handBuilt(good(), eight).subarray(0, 8 + good().length + 5), 'tensor "x" has data_offsets [0, 8] out of range (the data is 5 bytes)'],
    ["empty header", handBuilt(""), "header is not valid JSON (expected a value, but the header ends after 0 bytes)"],
    ["invalid JSON", handBuilt('{"x":'), "header is not valid JSON"],
    ["trailing comma", handBuilt(good(",")), "header is not valid JSON (expected a string at byte"],
    ["trailing garbage", handBuilt(`${good()} x`, eight), "unexpected text after the JSON value"],
    ["NUL padding", handBuilt(`${good()}\0\0`, eight), "header is not valid JSON"],
    ["single quotes", handBuilt("{'x':1}"), "header is not valid JSON"],
    ["not an object", handBuilt("[1, 2]"), "header is not a JSON object"],
    ["invalid UTF-8", handBuilt(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), "header is not valid UTF-8 (byte 0xff at byte 2 of the header)"],
    ["overlong UTF-8", handBuilt(new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d])), "header is not valid UTF-8"],
    ["encoded surrogate", handBuilt(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d])), "header is not valid UTF-8"],
    ["lone surrogate escape", handBuilt(`{${entry("x", "F32", [0], [0, 0]).replace('"x"', '"\\ud800"')}}`), "lone high surrogate escape"],
    ["control character", handBuilt('{"a\nb":1}'), "control character in a string"],
    ["bad escape", handBuilt('{"a\\qb":1}'), "invalid escape in a string"],
    ["deep nesting", handBuilt(`{"x":${"[".repeat(100000)}${"]".repeat(100000)}}`), "header nests arrays and objects more than 64 deep"],
    ["tensor not an object", handBuilt('{"x":[1]}'), 'tensor "x" is not a JSON object'],
    ["no data_offsets", handBuilt('{"x":{"dtype":"F32","shape":[]}}'), 'tensor "x" has no data_offsets'],
    ["field twice", handBuilt('{"x":{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}}', [0, 0, 0, 0]), 'tensor "x" has more than one "dtype" field'],
    ["offsets out of range", handBuilt(`{${entry("x", "F32", [2], [0, 16])}}`, eight), 'tensor "x" has data_offsets [0, 16] out of range (the data is 8 bytes)'],
    ["reversed offsets", handBuilt(`{${entry("x", "F32", [0], [8, 4])}}`, eight), 'tensor "x" has reversed data_offsets [8, 4]'],
    ["three offsets", handBuilt(`{${entry("x", "F32", [0], [0, 0, 0])}}`), 'tensor "x" has data_offsets [0,0,0]; expected two non-negative integers'],
    ["negative offset", handBuilt(`{${entry("x", "F32", [0], [-4, 0])}}`), "expected two non-negative integers"],
    ["size mismatch", handBuilt(`{${entry("x", "F32", [3], [0, 8])}}`, eight), 'tensor "x" has 8 bytes but F32[3] needs 12'],
    ["overlap", handBuilt(`{${entry("a", "F32", [2], [0, 8])},${entry("b", "F32", [1], [4, 8])}}`, eight), 'tensor "b" (bytes 4..8) overlaps tensor "a" (bytes 0..8)'],
    ["unknown dtype", handBuilt(`{${entry("x", "F8_E4M3", [1], [0, 1])}}`, [0]), 'tensor "x" has unknown dtype "F8_E4M3" (supported: F32, F16, BF16, I32, I8, U8, BOOL, F64, I64)'],
    ["numeric dtype", handBuilt(`{${entry("x", 5, [1], [0, 1])}}`, [0]), 'tensor "x" has unknown dtype 5'],
    ["negative shape", handBuilt(`{${entry("x", "U8", [-1], [0, 0])}}`), 'tensor "x" has shape [-1]; sizes must be non-negative integers below 2^53'],
    ["fractional shape", handBuilt(`{${entry("x", "U8", [1.5], [0, 0])}}`), "sizes must be non-negative integers"],
    ["exponent shape", handBuilt('{"x":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', [0]), "sizes must be non-negative integers"],
    ["shape past 2^53", handBuilt('{"x":{"dtype":"U8","shape":[9007199254740992],"data_offsets":[0,1]}}', [0]), "sizes must be non-negative integers"],
    ["huge digits", handBuilt(`{"x":{"dtype":"U8","shape":[${"9".repeat(400)}],"data_offsets":[0,1]}}`, [0]), "sizes must be non-negative integers below 2^53"],
    ["shape overflowing 2^64", handBuilt(`{${entry("x", "F32", [2 ** 30, 2 ** 30, 2 ** 30], [0, 8])}}`, eight), 'tensor "x" has 8 bytes but F32[1073741824, 1073741824, 1073741824] needs more than 2^64'],
    ["rank 9", handBuilt(`{${entry("x", "U8", [1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 1])}}`, [0]), "of rank 9; at most 8 dimensions are supported"],
    ["duplicate names", handBuilt(`{${entry("x", "F32", [1], [0, 4])},${entry("x", "F32", [1], [4, 8])}}`, eight), 'tensor "x" appears more than once in the header'],
    ["NUL in a name", handBuilt(`{${entry("a\0b", "F32", [0], [0, 0])}}`), 'tensor name "a\\u0000b" contains U+0000'],
    ["metadata not an object", handBuilt('{"__metadata__":"pt"}'), "__metadata__ is not a JSON object"],
    ["metadata value not a string", handBuilt('{"__metadata__":{"format":1}}'), '__metadata__ value "format" is not a string'],
    ["metadata twice", handBuilt('{"__metadata__":{},"__metadata__":{}}'), "__metadata__ appears more than once"],
  ];

  it("refuses each with its message, in one process", () => {
    if (skipped) return;
    const paths = cases.map(([, bytes], i) => {
      const file = join(dir, `corrupt-${i}.safetensors`);
      writeFileSync(file, bytes);
      return file;
    });
    writeFileSync(join(dir, "corrupt.list"), `${paths.join("\n")}\n`);
    const lines = ok(["check", join(dir, "corrupt.list")]).trimEnd().split("\n");
    expect(lines.length).toBe(cases.length);
    lines.forEach((line, i) => {
      const [what, , message] = cases[i];
      expect(line, what).toBe(`ERR 2 ${paths[i]}: ${line.slice(`ERR 2 ${paths[i]}: `.length)}`);
      expect(line, what).toContain(message);
      // The TypeScript reader refuses all of these too, save the C reader's stricter rules.
      const strictOnly = ["exponent shape", "rank 9", "NUL in a name", "lone surrogate escape"];
      if (!strictOnly.includes(what)) expect(() => parseSafetensors(cases[i][1]), what).toThrow();
    });
  });

  it("exits nonzero with the message on stderr, and reads a missing file as an I/O error", () => {
    if (skipped) return;
    const file = join(dir, "overlap.safetensors");
    writeFileSync(file, cases.find(([what]) => what === "overlap")![1]);
    const r = run(prog, ["dump", file]);
    expect(r).toMatchObject({ status: 2, signal: null, stdout: "" });
    expect(r.stderr).toBe(`error: ${file}: tensor "b" (bytes 4..8) overlaps tensor "a" (bytes 0..8)\n`);
    const missingFile = run(prog, ["dump", join(dir, "absent.safetensors")]);
    expect(missingFile).toMatchObject({ status: 1, signal: null, stderr: `error: ${join(dir, "absent.safetensors")}: cannot read (No such file or directory)\n` });
    expect(run(prog, ["dump", dir])).toMatchObject({ status: 1, stderr: `error: ${dir}: cannot read (it is a directory)\n` });
  });

  it("survives 200 random mutations of a valid file, agreeing with the TypeScript reader", () => {
    if (skipped) return;
    const base = serializeSafetensors(
      {
        a: tensor("f32", [2, 2], [1, 2, 3, 4]),
        "b.weight": tensor("f16", [3], [1, 2, 3]),
        c: tensor("i8", [2, 1, 2], [1, -1, 2, -2]),
        d: tensor("bool", [], [1]),
      },
      { format: "pt" },
    );
    const headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
    // mulberry32: a fixed seed, so a failure replays.
    let state = 0x5eed;
    const rand = () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const JSONISH = [..."{}[]\",:0123456789-+.eE \\u/ntfx", "null", "true", "1e9", "9007199254740993", "-0", "\\ud800", "\"F64\"", "\"I64\"", "[1,2]", "{}"];
    // Byte-level damage anywhere, mostly in the header.
    const mutateBytes = (input: Uint8Array): Uint8Array => {
      let b = input;
      const rounds = 1 + Math.floor(rand() * 3);
      for (let r = 0; r < rounds; r++) {
        const end = Math.min(b.length, headerEnd);
        const at = Math.floor(rand() * Math.max(1, rand() < 0.85 ? end : b.length));
        const kind = rand();
        if (kind < 0.15 && b.length > headerEnd) {
          // a data byte: the file stays valid
          b = b.slice();
          b[headerEnd + Math.floor(rand() * (b.length - headerEnd))] = Math.floor(rand() * 256);
        } else if (kind < 0.3) {
          b = b.slice();
          b[at] = Math.floor(rand() * 256);
        } else if (kind < 0.6) {
          const s = new TextEncoder().encode(pick(JSONISH));
          const cut = Math.floor(rand() * 3);
          b = new Uint8Array([...b.subarray(0, at), ...s, ...b.subarray(Math.min(b.length, at + cut))]);
        } else if (kind < 0.75) {
          b = new Uint8Array([...b.subarray(0, at), ...b.subarray(Math.min(b.length, at + 1 + Math.floor(rand() * 8)))]);
        } else if (kind < 0.85) {
          b = b.subarray(0, at);
        } else {
          b = b.slice();
          const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
          if (b.length >= 8) {
            const old = view.getBigUint64(0, true);
            const delta = BigInt(Math.floor(rand() * 17) - 8);
            view.setBigUint64(0, rand() < 0.8 ? BigInt.asUintN(64, old + delta) : BigInt.asUintN(64, BigInt(Math.floor(rand() * 2 ** 32)) << BigInt(Math.floor(rand() * 33))), true);
          }
        }
      }
      return b;
    };
    // Token-level edits of the header text that mostly keep it JSON, re-framed with its true
    // length, so the checks past the parser (offsets, sizes, dtypes, names) get exercised.
    const headerText = new TextDecoder().decode(base.subarray(8, headerEnd));
    const NUMBERS = ["0", "1", "2", "3", "4", "6", "8", "12", "16", "24", "28", "9007199254740991", "9007199254740992", "-1", "1.0", "1e1", "4294967296"];
    const DTYPES = ["F32", "F16", "BF16", "I32", "I8", "U8", "BOOL", "F64", "I64", "F8", "f32", ""];
    const NAMES = ["a", "b.weight", "c", "d", "__metadata__", "format", "dtype", "x\\u0000", "\\ud800"];
    const FRAGMENTS = [",1", ",0", "[", "]", ",\"e\":{}", ",\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", " ", "\\u00e9"];
    const replaceOne = (text: string, re: RegExp, by: () => string): string => {
      const hits = [...text.matchAll(re)];
      if (hits.length === 0) return text;
      const h = pick(hits);
      return text.slice(0, h.index) + by() + text.slice(h.index! + h[0].length);
    };
    const mutateHeader = (): Uint8Array => {
      let text = headerText.trimEnd();
      const rounds = 1 + Math.floor(rand() * 2);
      for (let r = 0; r < rounds; r++) {
        const kind = rand();
        if (kind < 0.35) text = replaceOne(text, /\d+/g, () => pick(NUMBERS));
        else if (kind < 0.55) text = replaceOne(text, /"(F32|F16|I8|BOOL)"/g, () => `"${pick(DTYPES)}"`);
        else if (kind < 0.7) text = replaceOne(text, /"(a|b\.weight|c|d|__metadata__|format|pt)"/g, () => `"${pick(NAMES)}"`);
        else if (kind < 0.85) {
          const at = Math.floor(rand() * text.length);
          text = text.slice(0, at) + pick(FRAGMENTS) + text.slice(at);
        } else text = replaceOne(text, /\[[^\[\]]*\]/g, () => pick(["[]", "[1,1,1,1,1,1,1,1,1]", "[0,0]", "[2,2,2]", "[8,4]"]));
      }
      const header = new TextEncoder().encode(text + " ".repeat(Math.floor(rand() * 8)));
      const data = base.subarray(headerEnd, rand() < 0.9 ? base.length : base.length - 1 - Math.floor(rand() * 8));
      return handBuilt(header, [...data]);
    };
    const mutants = Array.from({ length: 200 }, (_, i) => (i % 2 ? mutateBytes(base) : mutateHeader()));
    const paths = mutants.map((bytes, i) => {
      const file = join(dir, `fuzz-${i}.safetensors`);
      writeFileSync(file, bytes);
      return file;
    });
    writeFileSync(join(dir, "fuzz.list"), `${paths.join("\n")}\n`);
    const lines = ok(["check", join(dir, "fuzz.list")]).trimEnd().split("\n");
    expect(lines.length).toBe(mutants.length);
    // Stricter than the TypeScript reader only on purpose: U+0000 in names, lone surrogate
    // escapes, numbers with fractions or exponents, rank > 8; and I64, which it lacks.
    const stricter = /appears more than once|has more than one|U\+0000|lone (high|low) surrogate|at most 8 dimensions|sizes must be non-negative integers|expected two non-negative integers/;
    let accepted = 0;
    if (process.env.DT_DEBUG) console.log(lines.map((l) => l.replace(/^(ERR 2 )\S+: /, "$1").replace(/\d+/g, "N").slice(0, 70)).sort().join("\n"));
    lines.forEach((line, i) => {
      let ts: ReturnType<typeof parseSafetensors> | Error;
      try {
        ts = parseSafetensors(mutants[i]);
      } catch (e) {
        ts = e as Error;
      }
      if (line.startsWith("OK")) {
        accepted++;
        const tensors = line.split(" ").slice(1).map((t) => t.split(":"));
        if (ts instanceof Error) {
          expect(tensors.some(([, dtype]) => dtype === "I64"), `${paths[i]}: C accepts, TS says ${ts.message}`).toBe(true);
          return;
        }
        expect(tensors.map(([n]) => unhex(n)).sort(), paths[i]).toEqual([...ts.tensors.keys()].sort());
        for (const [n, dtype, shape] of tensors) {
          const want = ts.tensors.get(unhex(n))!;
          expect(shape === "" ? [] : shape.split(",").map(Number), paths[i]).toEqual(want.shape);
          expect(dtype === "F64" ? "F32" : dtype, paths[i]).toBe(FILE_DTYPE[want.dtype]);
        }
      } else {
        expect(line, paths[i]).toMatch(/^ERR 2 /);
        if (!(ts instanceof Error)) expect(line, `TS accepts ${paths[i]}`).toMatch(stricter);
      }
    });
    // The mutations must leave some files valid (data bytes, metadata) and break most.
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(150);
  });
});
