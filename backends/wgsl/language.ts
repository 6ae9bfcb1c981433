// How WGSL spells the kernel IR, for kernels after explicitCasts (WGSL converts nothing
// implicitly) and flattenGrid (the one grid loop becomes a grid-stride loop over invocations).
// WGSL has no f64: f64 math runs in f32, so the WGSL target's tolerance factor must cover f32
// accumulation (sums, means, softmax denominators, dot products) and f32 helpers (erf).
import type { MathFn, ScalarType } from "../../compiler/ir/scalar.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { assertFlatGrid } from "../common/kernel/flatten-grid.ts";
import { type BufferParam, type CombineOp, dimParam, ERRORS_PARAM, type Stmt } from "../common/kernel/ir.ts";
import type { Language } from "../common/kernel/render.ts";

const TYPE: Record<ScalarType, string> = { f64: "f32", f32: "f32", f16: "f32", bf16: "f32", i32: "i32", i8: "i32", u8: "i32", u32: "u32", bool: "bool" };

/**
 * Bits of each dtype in storage: f32 and i32 are arrays of themselves, the rest packed
 * little-endian into u32 words (core WGSL has no 8- or 16-bit storage; f16 needs the
 * shader-f16 feature), so bytes lie as everywhere else, the buffer rounded up to a word.
 */
export const WGSL_STORAGE_BITS: Record<DType, number> = { f32: 32, i32: 32, f16: 16, bf16: 16, i8: 8, u8: 8, bool: 8 };
export const WGSL_WORKGROUP_SIZE = 64;

/** Bit patterns read at run time: WGSL rejects a constant expression that is infinite or NaN. */
export const WGSL_PRELUDE = "var<private> F32_INF: u32 = 0x7f800000u;\nvar<private> F32_NAN: u32 = 0x7fc00000u;";

function shortest(f: number): string {
  for (let p = 1; ; p++) if (Math.fround(Number(f.toPrecision(p))) === f) return String(Number(f.toPrecision(p)));
}
function literal(v: number, type: ScalarType): string {
  const t = TYPE[type];
  if (t === "bool") return v !== 0 ? "true" : "false";
  if (t === "u32") return `${v}u`;
  if (t === "i32") return v === -(2 ** 31) ? "i32(-2147483648)" : v < 0 ? `(-${-v}i)` : `${v}i`;
  const f = Math.fround(v);
  if (Number.isNaN(f)) return "bitcast<f32>(F32_NAN)";
  if (Math.abs(f) === Infinity) return f > 0 ? "bitcast<f32>(F32_INF)" : "(-bitcast<f32>(F32_INF))";
  const s = shortest(Math.abs(f));
  const text = /[.e]/.test(s) ? s : `${s}.0`;
  return f < 0 || Object.is(f, -0) ? `(-${text})` : text;
}

/** A product of dims and positive literals: never negative, and not 0 where a loop over it runs. */
const isSize = (s: string) => /^(dim\d+|[1-9]\d*i)(\*(dim\d+|[1-9]\d*i))*$/.test(s.replace(/[()\s]/g, ""));
const isFloat = (t: ScalarType) => TYPE[t] === "f32";
/**
 * Whether an f32 is NaN, from its bits: Dawn's compiler (and the drivers under it) may assume
 * that floats are never NaN and fold `x != x` to false, so that max, min and softmax lost NaNs.
 */
const isNaN = (x: string) => `((bitcast<u32>(${x}) & 0x7fffffffu) > 0x7f800000u)`;
const NATIVE: Partial<Record<MathFn, (a: string[], float: boolean) => string>> = {
  ...Object.fromEntries(["exp", "log", "sqrt", "abs", "tanh", "trunc", "floor"].map((f) => [f, ([x]: string[]) => `${f}(${x})`])),
  // WGSL's pow is exp2(y * log2(x)): undefined for x < 0 (the IR's (-2) ** 2 is 4). Issue 9.
  pow: ([x, y]) => `pow(${x}, ${y})`,
  isnan: ([x]) => isNaN(x),
  // WGSL's max and min may return either operand when one is NaN; the IR's are NaN (a + b is).
  max: ([a, b], float) => (float ? `select(max(${a}, ${b}), ${a} + ${b}, ${isNaN(a)} || ${isNaN(b)})` : `max(${a}, ${b})`),
  min: ([a, b], float) => (float ? `select(min(${a}, ${b}), ${a} + ${b}, ${isNaN(a)} || ${isNaN(b)})` : `min(${a}, ${b})`),
  imul: ([a, b]) => `(${a} * ${b})`, // i32 products wrap in WGSL
  // WGSL's a / 0 is a, and -2^31 / -1 is -2^31 (the IR's wrap); the f64 helper would round in f32.
  idiv: ([a, b]) => (isSize(b) ? `(${a} / ${b})` : `select(${a} / ${b}, 0i, ${b} == 0i)`),
};

/** The word holding element `index` of a packed buffer, and the shift of its bits there. */
function packed(buffer: string, dtype: DType, index: string): { word: string; shift: string; bits: number } {
  const bits = WGSL_STORAGE_BITS[dtype];
  const lanes = 32 / bits;
  return { word: `${buffer}[u32(${index}) / ${lanes}u]`, shift: `(u32(${index}) % ${lanes}u) * ${bits}u`, bits };
}
const encode = (dtype: DType, v: string) => (dtype === "f16" || dtype === "bf16" ? `${dtype}Bits(${v})` : dtype === "bool" ? `select(0u, 1u, ${v})` : `(u32(${v}) & 0xffu)`);
/** Whether an f16 buffer is an array of f16 (the device has shader-f16) or of packed u32 words. */
const nativeStorage = (dtype: DType, f16: boolean) => WGSL_STORAGE_BITS[dtype] === 32 || (f16 && dtype === "f16");
/** Written packed buffers are atomic words: two threads may write the two halves of one word. */
const element = (b: BufferParam, f16: boolean) => (nativeStorage(b.dtype, f16) ? b.dtype : b.access === "write" ? "atomic<u32>" : "u32");
const isShared = (line: string) => line.trimStart().startsWith("var<workgroup>");

/** Whether statements hold a combine. */
const combines = (list: readonly Stmt[]): boolean =>
  list.some((s) => s.kind === "combine" || ((s.kind === "loop" || s.kind === "while") && combines(s.body)) || (s.kind === "if" && combines([...s.then, ...s.else])));

/** The value a combine starts from: what the op leaves unchanged. */
const IDENTITY: Record<CombineOp, string> = { sum: "0.0", max: literal(-Infinity, "f32"), min: literal(Infinity, "f32") };

/**
 * The WGSL spelling of the kernel IR. `f16`: for devices with the shader-f16 feature, f16 buffers
 * are arrays of f16 (`enable f16;`): a load converts exactly, and a store writes the bits the
 * IR's rounding gives (WGSL's own f32-to-f16 conversion may round either way), without the
 * atomics a packed word needs. Arithmetic stays in f32 either way.
 *
 * A cooperative kernel's grid loop gives each workgroup its iterations, and its workgroup loops
 * spread each iteration's over the workgroup's invocations. How its combines merge (`combine`),
 * in the order the artifact offers the variants (the loader takes the first the device can run):
 * - `{ oneSubgroup: S }`, where subgroups have at least S invocations: a workgroup of S
 *   invocations, one subgroup, merges with one subgroup operation (subgroupAdd, subgroupMax,
 *   subgroupMin): no workgroup memory and no barrier. (A CPU driver such as lavapipe runs a
 *   shader with a barrier in a slower mode: one barrier doubles a softmax's time there.)
 * - "subgroups": a workgroup of WGSL_WORKGROUP_SIZE; each subgroup merges its invocations'
 *   values, one invocation per subgroup writes the result to its slot in workgroup memory,
 *   then each subgroup merges the slots, its invocations taking every subgroup-size-th one:
 *   right however the device lays out its subgroups, which WGSL leaves open.
 * - "tree": a workgroup of WGSL_WORKGROUP_SIZE, one slot per invocation, halved at each barrier.
 * The launch is the same for all (a workgroup per grid iteration): only the threads differ.
 */
export type Combining = "tree" | "subgroups" | { oneSubgroup: number };

export function wgslLanguageFor({ f16, combine = "tree" }: { f16: boolean; combine?: Combining }): Language {
  /** Invocations per workgroup of a cooperative kernel. */
  const cooperativeSize = typeof combine === "object" ? combine.oneSubgroup : WGSL_WORKGROUP_SIZE;
  /** The IR's merge of two values: max and min NaN when either is. */
  const merge = (op: CombineOp, a: string, b: string) => (op === "sum" ? `(${a} + ${b})` : NATIVE[op]!([a, b], true));
  /** A subgroup's merge of each invocation's `v`: WGSL's subgroupMax and subgroupMin may drop a NaN, so it is checked for apart. */
  const subgroupMerge = (op: CombineOp, v: string) =>
    op === "sum" ? `subgroupAdd(${v})` : `select(subgroup${op === "max" ? "Max" : "Min"}(${v}), ${literal(NaN, "f32")}, subgroupAny(${isNaN(v)}))`;
  const language: Language = {
    name: "wgsl",
    literal,
    unary: (op, a) => (op === "neg" ? `(-${a})` : `(!${a})`),
    binary: (op, a, b) => (op === "<<" || op === ">>" ? `(${a} ${op} ${/^\d+u$/.test(b) ? b : `u32(${b})`})` : `(${a} ${op} ${b})`),
    math: (fn, args, types, use) => {
      // WGSL promises sin and cos only to 2^-11 absolute error in [-π, π]: the library's are f32-accurate.
      if (fn === "sin" || fn === "cos") {
        use(`${fn}Accurate`);
        return `${fn}Accurate(${args[0]})`;
      }
      return NATIVE[fn]?.(args, isFloat(types[0]));
    },
    select: (c, a, b) => `select(${b}, ${a}, ${c})`,
    cast: (to, from, a) => {
      if (to === "f16" || to === "bf16") throw new Error(`WGSL: a cast to ${to} is a rounding; the IR writes it as round`);
      if (to === "i8" || to === "u8") return language.round(to, a, () => undefined);
      return TYPE[to] === TYPE[from] ? a : `${TYPE[to]}(${a})`;
    },
    round: (dtype, a, use) => {
      if (dtype === "f16" || dtype === "bf16") {
        use(`${dtype}Bits`);
        use(`${dtype}FromBits`);
        return `${dtype}FromBits(${dtype}Bits(${a}))`;
      }
      return { f32: a, i32: `i32(${a})`, i8: `((i32(${a}) << 24u) >> 24u)`, u8: `(i32(${a}) & 255i)`, bool: `bool(${a})` }[dtype];
    },
    bitcast: (to, a) => `bitcast<${to}>(${a})`,
    load: (buffer, dtype, index, use) => {
      if (WGSL_STORAGE_BITS[dtype] === 32) return `${buffer}[${index}]`;
      if (f16 && dtype === "f16") return `f32(${buffer}[${index}])`;
      const { word, shift } = packed(buffer, dtype, index);
      if (dtype === "f16") return `unpack2x16float(${word})[u32(${index}) % 2u]`;
      if (dtype === "bf16") use("bf16FromBits");
      return { bf16: `bf16FromBits(${word} >> (${shift}))`, i8: `extractBits(i32(${word}), ${shift}, 8u)`, u8: `i32(extractBits(${word}, ${shift}, 8u))`, bool: `(extractBits(${word}, ${shift}, 8u) != 0u)` }[dtype as "i8"];
    },
    // Packed stores clear then set their bits atomically, so neighbours in one word may be written
    // by different threads (a lowering that gives each thread whole words could store plainly).
    store: (buffer, dtype, index, value, use) => {
      if (WGSL_STORAGE_BITS[dtype] === 32) return `${buffer}[${index}] = ${value};`;
      if (f16 && dtype === "f16") {
        use("f16Bits");
        return `${buffer}[${index}] = bitcast<vec2<f16>>(f16Bits(${value}))[0];`;
      }
      if (dtype === "f16" || dtype === "bf16") use(`${dtype}Bits`);
      const { word, shift, bits } = packed(buffer, dtype, index);
      const mask = bits === 16 ? "0xffffu" : "0xffu";
      return `{ let packed_bits = ${encode(dtype, value)}; let packed_shift = ${shift}; atomicAnd(&${word}, ~(${mask} << packed_shift)); atomicOr(&${word}, packed_bits << packed_shift); }`;
    },
    declare: (name, type, mutable, value) => `${mutable ? "var" : "let"} ${name}: ${TYPE[type]}${value === undefined ? "" : ` = ${value}`};`,
    loop: (index, start, end, step, scope, cooperative) => {
      const by = (s: string) => (step === 1 ? s : `${s} * ${step}i`);
      const strided = (first: string, stride: string) => `for (var ${index}: i32 = ${start === "0i" ? "" : `${start} + `}${by(first)}; ${index} < ${end}; ${index} += ${by(stride)}) {`;
      // Grid-stride loops, over invocations or (cooperative) workgroups: correct for any launch, so
      // the loader may cap the workgroup count at the device's limit (65535 per dimension).
      if (scope === "grid") return cooperative ? strided("i32(group.x)", "i32(workgroups.x)") : strided("i32(invocation.x)", `i32(workgroups.x) * ${WGSL_WORKGROUP_SIZE}i`);
      if (scope === "workgroup") return strided("i32(local.x)", `${cooperativeSize}i`);
      return `for (var ${index}: i32 = ${start}; ${index} < ${end}; ${index}${step === 1 ? "++" : ` += ${step}i`}) {`;
    },
    // Hoisted to module scope by `kernel`: WGSL declares workgroup memory there.
    shared: (name, type, size) => `var<workgroup> ${name}: array<${TYPE[type]}, ${size}>;`,
    barrier: "workgroupBarrier();",
    combine: (name, type, op, value) => {
      const t = TYPE[type];
      if (typeof combine === "object") return [`let ${name}: ${t} = ${subgroupMerge(op, `(${value})`)};`];
      // Each ends in a barrier: the next combine (of the next row, too) may write the slots again.
      const slots = `${name}_slots`;
      const lines = [`var<workgroup> ${slots}: array<${t}, ${WGSL_WORKGROUP_SIZE}>;`];
      if (combine === "subgroups") {
        lines.push(
          `let ${name}_own: ${t} = ${value};`,
          `${slots}[local.x] = select(${IDENTITY[op]}, ${subgroupMerge(op, `${name}_own`)}, subgroupElect());`,
          "workgroupBarrier();",
          `var ${name}_part: ${t} = ${IDENTITY[op]};`,
          `for (var slot = subgroupLane; slot < ${WGSL_WORKGROUP_SIZE}u; slot += subgroupSize) { let other = ${slots}[slot]; ${name}_part = ${merge(op, `${name}_part`, "other")}; }`,
          `let ${name}: ${t} = ${subgroupMerge(op, `${name}_part`)};`,
        );
      } else {
        lines.push(
          `${slots}[local.x] = ${value};`,
          "workgroupBarrier();",
          `for (var half = ${WGSL_WORKGROUP_SIZE / 2}u; half > 0u; half >>= 1u) {`,
          `  if (local.x < half) { let mine = ${slots}[local.x]; let other = ${slots}[local.x + half]; ${slots}[local.x] = ${merge(op, "mine", "other")}; }`,
          "  workgroupBarrier();",
          "}",
          `let ${name}: ${t} = ${slots}[0];`,
        );
      }
      return [...lines, "workgroupBarrier();"];
    },
    // The first error wins: a compare-exchange from 0 (retried, since the weak one may fail spuriously), then the values.
    fail: (code, values) => [
      `loop { let error_slot = atomicCompareExchangeWeak(&${ERRORS_PARAM}[0], 0i, ${code}i); if (error_slot.exchanged) { ${values.map((v, i) => `atomicStore(&${ERRORS_PARAM}[${i + 1}], ${v});`).join(" ")} } if (error_slot.exchanged || error_slot.old_value != 0i) { break; } }`,
    ],
    kernel: (k, body) => {
      assertFlatGrid(k, "WGSL");
      if (k.workgroupSize !== undefined && k.workgroupSize !== WGSL_WORKGROUP_SIZE) throw new Error(`WGSL: ${k.name} is cooperative over ${k.workgroupSize} threads; WGSL kernels have ${WGSL_WORKGROUP_SIZE}`);
      const bind = (i: number, decl: string) => `@group(0) @binding(${i}) ${decl};`;
      const dims = k.dims.map((_, i) => dimParam(i));
      const withSubgroups = combine !== "tree" && combines(k.body);
      const builtins = [
        "@builtin(global_invocation_id) invocation: vec3<u32>",
        "@builtin(num_workgroups) workgroups: vec3<u32>",
        ...(k.workgroupSize ? ["@builtin(workgroup_id) group: vec3<u32>", "@builtin(local_invocation_id) local: vec3<u32>"] : []),
        ...(withSubgroups && combine === "subgroups" ? ["@builtin(subgroup_invocation_id) subgroupLane: u32", "@builtin(subgroup_size) subgroupSize: u32"] : []),
      ];
      return [
        ...(f16 && k.buffers.some((b) => b.dtype === "f16") ? ["enable f16;"] : []),
        ...(withSubgroups ? ["enable subgroups;"] : []),
        ...k.buffers.map((b, i) => bind(i, `var<storage, ${b.access === "read" ? "read" : "read_write"}> ${b.name}: array<${element(b, f16)}>`)),
        ...(dims.length ? [`struct Dims { ${dims.map((d) => `${d}: i32`).join(", ")} }`, bind(k.buffers.length, "var<uniform> dims: Dims")] : []),
        ...(k.errors.length ? [bind(k.buffers.length + (dims.length ? 1 : 0), `var<storage, read_write> ${ERRORS_PARAM}: array<atomic<i32>>`)] : []),
        ...body.filter(isShared).map((l) => l.trim()),
        `@compute @workgroup_size(${k.workgroupSize ? cooperativeSize : WGSL_WORKGROUP_SIZE})`,
        `fn ${k.name}(${builtins.join(", ")}) {`,
        ...dims.map((d) => `  let ${d} = dims.${d};`),
        ...body.filter((l) => !isShared(l)),
        "}",
      ].join("\n");
    },
    helper: (fn, body) => [`fn ${fn.name}(${fn.params.map((p) => `${p.name}: ${TYPE[p.type]}`).join(", ")}) -> ${TYPE[fn.returns]} {`, ...body, "}"].join("\n"),
  };
  return language;
}

/** Every device's spelling: f16 packed in u32 words, combines through a tree in workgroup memory. */
export const wgslLanguage = wgslLanguageFor({ f16: false });
