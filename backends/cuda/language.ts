// How CUDA C spells the kernel IR, for kernels after flattenGrid (the one grid loop becomes a
// grid-stride loop over threads) and explicitCasts (C would convert silently, but explicitly
// is what the other typed language needs, and the same kernel IR feeds both). f64 math runs
// in double, as the interpreter's; f32 math in float. Only portable C is used on storage (16-bit
// floats are unsigned short, decoded by the kernel-IR helpers), so the source also builds with
// g++ against the CPU emulation header of issue 10, which defines __global__, __device__,
// blockIdx and friends, atomicCAS, __float_as_uint and __uint_as_float.
import type { MathFn, ScalarType } from "../../compiler/ir/scalar.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { assertFlatGrid } from "../common/kernel/flatten-grid.ts";
import { type CombineOp, dimParam, ERRORS_PARAM } from "../common/kernel/ir.ts";
import type { Language } from "../common/kernel/render.ts";

const TYPE: Record<ScalarType, string> = { f64: "double", f32: "float", f16: "float", bf16: "float", i32: "int", i8: "int", u8: "int", u32: "unsigned int", bool: "bool" };

/** The element type of each dtype's buffers: natural widths, so buffers are laid out as safetensors lays them out. */
export const CUDA_STORAGE: Record<DType, string> = { f32: "float", f16: "unsigned short", bf16: "unsigned short", i32: "int", i8: "signed char", u8: "unsigned char", bool: "unsigned char" };

/** INFINITY and NAN, and the math functions for device and host code. */
export const CUDA_PRELUDE = "#include <math.h>";

function shortest(f: number): string {
  for (let p = 1; ; p++) if (Math.fround(Number(f.toPrecision(p))) === f) return String(Number(f.toPrecision(p)));
}
function literal(v: number, type: ScalarType): string {
  const t = TYPE[type];
  if (t === "bool") return v !== 0 ? "true" : "false";
  if (t === "unsigned int") return `${v}u`;
  if (t === "int") return v === -(2 ** 31) ? "(-2147483647 - 1)" : v < 0 ? `(${v})` : String(v);
  const x = t === "float" ? Math.fround(v) : v;
  const cast = t === "float" ? "" : "(double)";
  if (Number.isNaN(x)) return `${cast}NAN`;
  if (Math.abs(x) === Infinity) return x > 0 ? `${cast}INFINITY` : `(-${cast}INFINITY)`;
  const s = t === "float" ? shortest(Math.abs(x)) : String(Math.abs(x));
  const text = `${/[.e]/.test(s) ? s : `${s}.0`}${t === "float" ? "f" : ""}`;
  return x < 0 || Object.is(x, -0) ? `(-${text})` : text;
}

/** A product of dims and positive literals: never negative, and not 0 where a loop over it runs. */
const isSize = (s: string) => /^(dim\d+|[1-9]\d*)(\*(dim\d+|[1-9]\d*))*$/.test(s.replace(/[()\s]/g, ""));
const FLOAT_FNS = ["exp", "log", "sqrt", "tanh", "cos", "sin", "pow", "trunc", "floor"] as const;
const NATIVE: Partial<Record<MathFn, (a: string[], t: string) => string>> = {
  // expf for float, exp for double: a float argument is computed in float, as the IR types it.
  ...Object.fromEntries(FLOAT_FNS.map((f) => [f, (a: string[], t: string) => `${f}${t === "float" ? "f" : ""}(${a.join(", ")})`])),
  // The library's erf (within 2 ulp) rather than the kernel-IR helper, whose name it would clash with.
  erf: ([x], t) => `erf${t === "float" ? "f" : ""}(${x})`,
  abs: ([x], t) => (t === "float" ? `fabsf(${x})` : t === "double" ? `fabs(${x})` : `abs(${x})`),
  isnan: ([x]) => `isnan(${x})`,
  // fmaxf and fminf return the other operand when one is NaN; the IR's max and min are NaN (a + b is).
  max: ([a, b], t) => (t === "int" ? `(${a} > ${b} ? ${a} : ${b})` : `((isnan(${a}) || isnan(${b})) ? ${a} + ${b} : fmax${t === "float" ? "f" : ""}(${a}, ${b}))`),
  min: ([a, b], t) => (t === "int" ? `(${a} < ${b} ? ${a} : ${b})` : `((isnan(${a}) || isnan(${b})) ? ${a} + ${b} : fmin${t === "float" ? "f" : ""}(${a}, ${b}))`),
  // Signed overflow is undefined in C; unsigned products wrap as the IR's do.
  imul: ([a, b]) => `((int)((unsigned int)${a} * (unsigned int)${b}))`,
  // C's a / 0 and -2^31 / -1 are undefined; the IR's are 0 and -2^31 (negation wraps as unsigned).
  idiv: ([a, b]) => (isSize(b) ? `(${a} / ${b})` : `(${b} == 0 ? 0 : ${b} == -1 ? (int)(0u - (unsigned int)${a}) : ${a} / ${b})`),
};

const ROUND: Partial<Record<DType, (a: string) => string>> = {
  f32: (a) => `((float)${a})`,
  i32: (a) => `((int)${a})`,
  i8: (a) => `((int)(signed char)(int)${a})`, // wraps: nvcc and g++ convert to narrower integers modulo 2^8
  u8: (a) => `((int)${a} & 255)`,
  bool: (a) => `(${a} != 0)`,
};

/** Threads per block of every launch: the kernels are grid-stride loops (over threads, or over blocks in cooperative kernels), correct for any count of blocks. */
export const CUDA_BLOCK = 256;
const WARP = 32;

/** The value a combine starts from: what the op leaves unchanged. */
const IDENTITY: Record<CombineOp, string> = { sum: "0.0", max: "(-INFINITY)", min: "INFINITY" };

/** The IR's merge of two values of C type `t`: max and min NaN when either is. */
const merge = (op: CombineOp, a: string, b: string, t: string) => (op === "sum" ? `(${a} + ${b})` : NATIVE[op]!([a, b], t));

export const cudaLanguage: Language = {
  name: "cuda",
  literal,
  unary: (op, a) => (op === "neg" ? `(-${a})` : `(!${a})`),
  binary: (op, a, b, type) => {
    if (op === "%" && TYPE[type] !== "int" && TYPE[type] !== "unsigned int") return `fmod${TYPE[type] === "float" ? "f" : ""}(${a}, ${b})`;
    return `(${a} ${op} ${b})`;
  },
  math: (fn, args, types) => NATIVE[fn]?.(args, TYPE[types[0]]),
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  cast: (to, from, a) => {
    if (to === "f16" || to === "bf16") throw new Error(`CUDA: a cast to ${to} is a rounding; the IR writes it as round`);
    if (to === "i8" || to === "u8" || to === "bool") return ROUND[to]!(a);
    return TYPE[to] === TYPE[from] ? a : `((${TYPE[to]})${a})`;
  },
  round: (dtype, a, use) => {
    if (dtype !== "f16" && dtype !== "bf16") return ROUND[dtype]!(a);
    use(`${dtype}Bits`);
    use(`${dtype}FromBits`);
    return `${dtype}FromBits(${dtype}Bits(${a}))`;
  },
  bitcast: (to, a) => (to === "u32" ? `__float_as_uint(${a})` : `__uint_as_float(${a})`),
  load: (buffer, dtype, index, use) => {
    if (dtype === "f16" || dtype === "bf16") {
      use(`${dtype}FromBits`);
      return `${dtype}FromBits(${buffer}[${index}])`;
    }
    return dtype === "bool" ? `(${buffer}[${index}] != 0)` : `${buffer}[${index}]`;
  },
  store: (buffer, dtype, index, value, use) => {
    if (dtype === "f16" || dtype === "bf16") use(`${dtype}Bits`);
    const encoded = dtype === "f16" || dtype === "bf16" ? `${dtype}Bits(${value})` : dtype === "bool" ? `(${value} ? 1 : 0)` : value;
    return `${buffer}[${index}] = ${dtype === "f32" || dtype === "i32" ? "" : `(${CUDA_STORAGE[dtype]})`}${encoded};`;
  },
  declare: (name, type, mutable, value) => `${mutable ? "" : "const "}${TYPE[type]} ${name}${value === undefined ? "" : ` = ${value}`};`,
  loop: (index, start, end, step, scope, cooperative) => {
    const by = (s: string) => (step === 1 ? s : `${s} * ${step}`);
    const strided = (first: string, stride: string) => `for (int ${index} = ${start === "0" ? "" : `${start} + `}${by(first)}; ${index} < ${end}; ${index} += ${by(stride)}) {`;
    // Grid-stride loops, over threads or (cooperative) blocks: correct for any launch size, so the runtime may cap the block count.
    if (scope === "grid") return cooperative ? strided("(int)blockIdx.x", "(int)gridDim.x") : strided("(int)(blockIdx.x * blockDim.x + threadIdx.x)", "(int)(gridDim.x * blockDim.x)");
    if (scope === "workgroup") return strided("(int)threadIdx.x", "(int)blockDim.x");
    return `for (int ${index} = ${start}; ${index} < ${end}; ${index}${step === 1 ? "++" : ` += ${step}`}) {`;
  },
  shared: (name, type, size) => `__shared__ ${TYPE[type]} ${name}[${size}];`,
  barrier: "__syncthreads();",
  // Each warp merges its threads' values with shuffles (CUDA warps are the block's threads by
  // index / 32), one thread per warp writes the result to its slot, then every thread merges the
  // slots in order. The closing barrier: the next combine (of the next row, too) writes the slots again.
  combine: (name, type, op, value) => {
    const t = TYPE[type];
    const slots = `${name}_slots`;
    return [
      `__shared__ ${t} ${slots}[${CUDA_BLOCK / WARP}];`,
      `${t} ${name}_own = ${value};`,
      `for (int lanes = ${WARP / 2}; lanes > 0; lanes >>= 1) ${name}_own = ${merge(op, `${name}_own`, `__shfl_xor_sync(0xffffffffu, ${name}_own, lanes)`, t)};`,
      `if (threadIdx.x % ${WARP} == 0) ${slots}[threadIdx.x / ${WARP}] = ${name}_own;`,
      "__syncthreads();",
      `${t} ${name}_part = ${IDENTITY[op]};`,
      `for (int slot = 0; slot < ${CUDA_BLOCK / WARP}; slot++) ${name}_part = ${merge(op, `${name}_part`, `${slots}[slot]`, t)};`,
      `const ${t} ${name} = ${name}_part;`,
      "__syncthreads();",
    ];
  },
  // The first error wins: only the thread that swaps 0 for its code writes the values.
  fail: (code, values) => [`if (atomicCAS(${ERRORS_PARAM}, 0, ${code}) == 0) { ${values.map((v, i) => `${ERRORS_PARAM}[${i + 1}] = ${v};`).join(" ")} }`],
  kernel: (k, body) => {
    assertFlatGrid(k, "CUDA");
    if (k.workgroupSize !== undefined && k.workgroupSize !== CUDA_BLOCK) throw new Error(`CUDA: ${k.name} is cooperative over ${k.workgroupSize} threads; CUDA kernels launch ${CUDA_BLOCK}`);
    const params = [
      ...k.buffers.map((b) => `${b.access === "read" ? "const " : ""}${CUDA_STORAGE[b.dtype]}* ${b.name}`),
      ...k.dims.map((_, i) => `int ${dimParam(i)}`),
      ...(k.errors.length ? [`int* ${ERRORS_PARAM}`] : []),
    ];
    return [`extern "C" __global__ void ${k.name}(${params.join(", ")}) {`, ...body, "}"].join("\n");
  },
  helper: (fn, body) => [`__device__ static ${TYPE[fn.returns]} ${fn.name}(${fn.params.map((p) => `${TYPE[p.type]} ${p.name}`).join(", ")}) {`, ...body, "}"].join("\n"),
};
