// The WGSL and CUDA language tables: lowered kernels, after explicitCasts and flattenGrid,
// printed through each (snapshotted, so a change to the emitted code is reviewed as code), and
// the CUDA source of every kernel family compiled by nvcc for sm_80 and sm_90.
import { jsKernelFunction, meanSquareGraph, siluGraph } from "../support/kernels.ts";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { explicitCasts } from "../../backends/common/kernel/explicit-casts.ts";
import { flattenGrid } from "../../backends/common/kernel/flatten-grid.ts";
import type { Kernel } from "../../backends/common/kernel/ir.ts";
import { type Language, renderHelpers, renderKernel } from "../../backends/common/kernel/render.ts";
import { lowerKernel } from "../../backends/common/lower/index.ts";
import { CUDA_BLOCK, CUDA_PRELUDE, CUDA_STORAGE, cudaLanguage } from "../../backends/cuda/language.ts";
import { jsLanguage } from "../../backends/js/language.ts";
import { WGSL_WORKGROUP_SIZE, wgslLanguage, wgslLanguageFor } from "../../backends/wgsl/language.ts";
import type { Cooperation } from "../../backends/common/lower/cooperative.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseElementwise } from "../../compiler/passes/fuse-elementwise.ts";
import { bf16FromBits, f16FromBits } from "../../compiler/ir/numeric.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { BYTES, schedule } from "../../compiler/schedule/index.ts";
import { evalMonomial } from "../../common/size.ts";

/** Every kernel of a graph as a GPU target takes it: lowered, conversions explicit, one grid loop. */
function gpuKernels(graph: Graph, prefix = "", cooperation?: Cooperation): Kernel[] {
  const plan = schedule(graph);
  return plan.kernels.map((pk) => {
    const k = flattenGrid(explicitCasts(lowerKernel(plan, pk, cooperation)));
    return { ...k, name: prefix + k.name };
  });
}
const only = (graph: Graph) => {
  const ks = gpuKernels(graph);
  expect(ks).toHaveLength(1);
  return ks[0];
};
const source = (k: Kernel, lang: Language) => renderKernel(k, lang).source;
/** The one kernel of a graph, with its reductions lowered a workgroup per row. */
const cooperativeOnly = (graph: Graph, workgroupSize: number) => {
  const ks = gpuKernels(graph, "", { workgroupSize, reductions: "cooperative" });
  expect(ks).toHaveLength(1);
  return ks[0];
};

const SILU = siluGraph();
const MEAN_SQUARE = meanSquareGraph();

describe("the WGSL language table", () => {
  it("prints an elementwise chain with a broadcast operand as a grid-stride loop over invocations, dims from a uniform", () => {
    expect(source(only(SILU), wgslLanguage)).toMatchInlineSnapshot(`
      "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<storage, read> in0: array<f32>;
      @group(0) @binding(2) var<storage, read> in1: array<f32>;
      struct Dims { dim0: i32 }
      @group(0) @binding(3) var<uniform> dims: Dims;
      @compute @workgroup_size(64)
      fn k0_fused(@builtin(global_invocation_id) invocation: vec3<u32>, @builtin(num_workgroups) workgroups: vec3<u32>) {
        let dim0 = dims.dim0;
        for (var flat: i32 = i32(invocation.x); flat < (dim0 * 4i); flat += i32(workgroups.x) * 64i) {
          let i0: i32 = (flat / 4i);
          let o0_1: i32 = (i0 * 4i);
          let i2: i32 = (flat % 4i);
          let v0: f32 = in0[(o0_1 + i2)];
          let v1: f32 = in1[i2];
          let t2: f32 = (v0 * v1);
          out[(o0_1 + i2)] = (t2 / (1.0 + exp((-t2))));
        }
      }"
    `);
  });

  it("prints a row reduction with an f32 accumulator (WGSL has no f64)", () => {
    expect(source(only(MEAN_SQUARE), wgslLanguage)).toMatchInlineSnapshot(`
      "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<storage, read> in0: array<f32>;
      struct Dims { dim0: i32 }
      @group(0) @binding(2) var<uniform> dims: Dims;
      @compute @workgroup_size(64)
      fn k0_fused(@builtin(global_invocation_id) invocation: vec3<u32>, @builtin(num_workgroups) workgroups: vec3<u32>) {
        let dim0 = dims.dim0;
        for (var i0: i32 = i32(invocation.x); i0 < dim0; i0 += i32(workgroups.x) * 64i) {
          var acc: f32 = 0.0;
          for (var r1: i32 = 0i; r1 < 8i; r1++) {
            let v0: f32 = in0[((i0 * 8i) + r1)];
            let v: f32 = (v0 * v0);
            acc = (acc + v);
          }
          out[i0] = (acc / 8.0);
        }
      }"
    `);
  });

  it("prints a row reduction a workgroup per row, the workgroup one subgroup: one subgroupAdd, no barrier", () => {
    expect(source(cooperativeOnly(MEAN_SQUARE, WGSL_WORKGROUP_SIZE), wgslLanguageFor({ f16: false, combine: { oneSubgroup: 8 } }))).toMatchInlineSnapshot(`
      "enable subgroups;
      @group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<storage, read> in0: array<f32>;
      struct Dims { dim0: i32 }
      @group(0) @binding(2) var<uniform> dims: Dims;
      @compute @workgroup_size(8)
      fn k0_fused(@builtin(global_invocation_id) invocation: vec3<u32>, @builtin(num_workgroups) workgroups: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
        let dim0 = dims.dim0;
        for (var i0: i32 = i32(group.x); i0 < dim0; i0 += i32(workgroups.x)) {
          var acc: f32 = 0.0;
          for (var r1: i32 = i32(local.x); r1 < 8i; r1 += 8i) {
            let v0: f32 = in0[((i0 * 8i) + r1)];
            let v: f32 = (v0 * v0);
            acc = (acc + v);
          }
          let total: f32 = subgroupAdd((acc));
          for (var once2: i32 = i32(local.x); once2 < 1i; once2 += 8i) {
            out[i0] = (total / 8.0);
          }
        }
      }"
    `);
  });

  it("prints a row reduction a workgroup per row: subgroup sums, then one slot per subgroup in workgroup memory", () => {
    expect(source(cooperativeOnly(MEAN_SQUARE, WGSL_WORKGROUP_SIZE), wgslLanguageFor({ f16: false, combine: "subgroups" }))).toMatchInlineSnapshot(`
      "enable subgroups;
      @group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<storage, read> in0: array<f32>;
      struct Dims { dim0: i32 }
      @group(0) @binding(2) var<uniform> dims: Dims;
      var<workgroup> total_slots: array<f32, 64>;
      @compute @workgroup_size(64)
      fn k0_fused(@builtin(global_invocation_id) invocation: vec3<u32>, @builtin(num_workgroups) workgroups: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>, @builtin(subgroup_invocation_id) subgroupLane: u32, @builtin(subgroup_size) subgroupSize: u32) {
        let dim0 = dims.dim0;
        for (var i0: i32 = i32(group.x); i0 < dim0; i0 += i32(workgroups.x)) {
          var acc: f32 = 0.0;
          for (var r1: i32 = i32(local.x); r1 < 8i; r1 += 64i) {
            let v0: f32 = in0[((i0 * 8i) + r1)];
            let v: f32 = (v0 * v0);
            acc = (acc + v);
          }
          let total_own: f32 = acc;
          total_slots[local.x] = select(0.0, subgroupAdd(total_own), subgroupElect());
          workgroupBarrier();
          var total_part: f32 = 0.0;
          for (var slot = subgroupLane; slot < 64u; slot += subgroupSize) { let other = total_slots[slot]; total_part = (total_part + other); }
          let total: f32 = subgroupAdd(total_part);
          workgroupBarrier();
          for (var once2: i32 = i32(local.x); once2 < 1i; once2 += 64i) {
            out[i0] = (total / 8.0);
          }
        }
      }"
    `);
  });

  it("prints a row reduction a workgroup per row without subgroups: a tree in workgroup memory", () => {
    expect(source(cooperativeOnly(MEAN_SQUARE, WGSL_WORKGROUP_SIZE), wgslLanguage)).toMatchInlineSnapshot(`
      "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<storage, read> in0: array<f32>;
      struct Dims { dim0: i32 }
      @group(0) @binding(2) var<uniform> dims: Dims;
      var<workgroup> total_slots: array<f32, 64>;
      @compute @workgroup_size(64)
      fn k0_fused(@builtin(global_invocation_id) invocation: vec3<u32>, @builtin(num_workgroups) workgroups: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
        let dim0 = dims.dim0;
        for (var i0: i32 = i32(group.x); i0 < dim0; i0 += i32(workgroups.x)) {
          var acc: f32 = 0.0;
          for (var r1: i32 = i32(local.x); r1 < 8i; r1 += 64i) {
            let v0: f32 = in0[((i0 * 8i) + r1)];
            let v: f32 = (v0 * v0);
            acc = (acc + v);
          }
          total_slots[local.x] = acc;
          workgroupBarrier();
          for (var half = 32u; half > 0u; half >>= 1u) {
            if (local.x < half) { let mine = total_slots[local.x]; let other = total_slots[local.x + half]; total_slots[local.x] = (mine + other); }
            workgroupBarrier();
          }
          let total: f32 = total_slots[0];
          workgroupBarrier();
          for (var once2: i32 = i32(local.x); once2 < 1i; once2 += 64i) {
            out[i0] = (total / 8.0);
          }
        }
      }"
    `);
  });

  it("prints the f16Bits and erf helpers as WGSL functions, f64 as f32", () => {
    expect(renderHelpers(["f16Bits", "erf"], wgslLanguage).join("\n\n")).toMatchInlineSnapshot(`
      "fn erf(x: f32) -> f32 {
        let ax: f32 = abs(x);
        if ((ax < 2.5)) {
          var term: f32 = x;
          var total: f32 = x;
          let x2: f32 = (x * x);
          for (var n: i32 = 1i; n < 200i; n++) {
            term = (term * ((-x2) / f32(n)));
            let add: f32 = (term / ((2.0 * f32(n)) + 1.0));
            total = (total + add);
            if ((abs(add) < (1e-17 * abs(total)))) {
              break;
            }
          }
          return (1.1283792 * total);
        }
        if ((ax > 6.0)) {
          return select(select(x, (-1.0), (x < 0.0)), 1.0, (x > 0.0));
        }
        var frac: f32 = ax;
        for (var k: i32 = 0i; k < 60i; k++) {
          frac = (ax + ((f32((60i - k)) / 2.0) / frac));
        }
        let erfc: f32 = ((exp(((-ax) * ax)) / 1.7724539) / frac);
        return (select(select(x, (-1.0), (x < 0.0)), 1.0, (x > 0.0)) * (1.0 - erfc));
      }

      fn f16Bits(x: f32) -> u32 {
        let bits: u32 = bitcast<u32>(x);
        let sign: u32 = ((bits >> 16u) & 32768u);
        let exponent: u32 = ((bits >> 23u) & 255u);
        var mant: u32 = (bits & 8388607u);
        if ((exponent == 255u)) {
          return ((sign | 31744u) | select(0u, 512u, (mant != 0u)));
        }
        var e: i32 = (i32(exponent) - 112i);
        if ((e >= 31i)) {
          return (sign | 31744u);
        }
        if ((e <= 0i)) {
          if ((e < (-10i))) {
            return sign;
          }
          mant = (mant | 8388608u);
          let shift: u32 = u32((14i - e));
          let half: u32 = (1u << u32((shift - 1u)));
          let rest: u32 = (mant & ((1u << u32(shift)) - 1u));
          var m: u32 = (mant >> u32(shift));
          if (((rest > half) || ((rest == half) && ((m & 1u) != 0u)))) {
            m = (m + 1u);
          }
          return (sign | m);
        }
        let rest: u32 = (mant & 8191u);
        var m: u32 = (mant >> 13u);
        if (((rest > 4096u) || ((rest == 4096u) && ((m & 1u) != 0u)))) {
          m = (m + 1u);
          if ((m == 1024u)) {
            m = 0u;
            e = (e + 1i);
            if ((e >= 31i)) {
              return (sign | 31744u);
            }
          }
        }
        return ((sign | (u32(e) << 10u)) | m);
      }"
    `);
  });
});

describe("the CUDA language table", () => {
  it("prints an elementwise chain with a broadcast operand as a grid-stride loop over threads", () => {
    expect(source(only(SILU), cudaLanguage)).toMatchInlineSnapshot(`
      "extern "C" __global__ void k0_fused(float* out, const float* in0, const float* in1, int dim0) {
        for (int flat = (int)(blockIdx.x * blockDim.x + threadIdx.x); flat < (dim0 * 4); flat += (int)(gridDim.x * blockDim.x)) {
          const int i0 = (flat / 4);
          const int o0_1 = (i0 * 4);
          const int i2 = (flat % 4);
          const float v0 = in0[(o0_1 + i2)];
          const float v1 = in1[i2];
          const float t2 = ((float)(v0 * v1));
          out[(o0_1 + i2)] = (t2 / (1.0f + expf((-t2))));
        }
      }"
    `);
  });

  it("prints a row reduction with a double accumulator, as the interpreter sums", () => {
    expect(source(only(MEAN_SQUARE), cudaLanguage)).toMatchInlineSnapshot(`
      "extern "C" __global__ void k0_fused(float* out, const float* in0, int dim0) {
        for (int i0 = (int)(blockIdx.x * blockDim.x + threadIdx.x); i0 < dim0; i0 += (int)(gridDim.x * blockDim.x)) {
          double acc = 0.0;
          for (int r1 = 0; r1 < 8; r1++) {
            const float v0 = in0[((i0 * 8) + r1)];
            const float v = ((float)(v0 * v0));
            acc = (acc + ((double)v));
          }
          out[i0] = ((float)(acc / 8.0));
        }
      }"
    `);
  });

  it("prints a row reduction a block per row: warp shuffles, then one slot per warp in shared memory", () => {
    expect(source(cooperativeOnly(MEAN_SQUARE, CUDA_BLOCK), cudaLanguage)).toMatchInlineSnapshot(`
      "extern "C" __global__ void k0_fused(float* out, const float* in0, int dim0) {
        for (int i0 = (int)blockIdx.x; i0 < dim0; i0 += (int)gridDim.x) {
          double acc = 0.0;
          for (int r1 = (int)threadIdx.x; r1 < 8; r1 += (int)blockDim.x) {
            const float v0 = in0[((i0 * 8) + r1)];
            const float v = ((float)(v0 * v0));
            acc = (acc + ((double)v));
          }
          __shared__ double total_slots[8];
          double total_own = acc;
          for (int lanes = 16; lanes > 0; lanes >>= 1) total_own = (total_own + __shfl_xor_sync(0xffffffffu, total_own, lanes));
          if (threadIdx.x % 32 == 0) total_slots[threadIdx.x / 32] = total_own;
          __syncthreads();
          double total_part = 0.0;
          for (int slot = 0; slot < 8; slot++) total_part = (total_part + total_slots[slot]);
          const double total = total_part;
          __syncthreads();
          for (int once2 = (int)threadIdx.x; once2 < 1; once2 += (int)blockDim.x) {
            out[i0] = ((float)(total / 8.0));
          }
        }
      }"
    `);
  });

  it("prints the f16Bits helper as a __device__ function", () => {
    expect(renderHelpers(["f16Bits"], cudaLanguage).join("\n\n")).toMatchInlineSnapshot(`
      "__device__ static unsigned int f16Bits(double x) {
        const unsigned int bits = __float_as_uint(((float)x));
        const unsigned int sign = ((bits >> 16u) & 32768u);
        const unsigned int exponent = ((bits >> 23u) & 255u);
        unsigned int mant = (bits & 8388607u);
        if ((exponent == 255u)) {
          return ((sign | 31744u) | ((mant != 0u) ? 512u : 0u));
        }
        int e = (((int)exponent) - 112);
        if ((e >= 31)) {
          return (sign | 31744u);
        }
        if ((e <= 0)) {
          if ((e < (-10))) {
            return sign;
          }
          mant = (mant | 8388608u);
          const unsigned int shift = ((unsigned int)(14 - e));
          const unsigned int half = (1u << (shift - 1u));
          const unsigned int rest = (mant & ((1u << shift) - 1u));
          unsigned int m = (mant >> shift);
          if (((rest > half) || ((rest == half) && ((m & 1u) != 0u)))) {
            m = (m + 1u);
          }
          return (sign | m);
        }
        const unsigned int rest = (mant & 8191u);
        unsigned int m = (mant >> 13u);
        if (((rest > 4096u) || ((rest == 4096u) && ((m & 1u) != 0u)))) {
          m = (m + 1u);
          if ((m == 1024u)) {
            m = 0u;
            e = (e + 1);
            if ((e >= 31)) {
              return (sign | 31744u);
            }
          }
        }
        return ((sign | (((unsigned int)e) << 10u)) | m);
      }"
    `);
  });
});

const FAMILIES = `graph g [N] {
  %0 = input {name = "table"} : f32[2, 6, 3]
  %1 = input {name = "ids"} : i32[N]
  %2 = gather(%0, %1) {axis = 1} : f32[2, N, 3]
  %3 = softmax(%2) {axis = 1} : f32[2, N, 3]
  %4 = input {name = "w"} : f32[3, 5]
  %5 = matmul(%3, %4) : f32[2, N, 5]
  %6 = max(%5) {axes = [0, 1]} : f32[5]
  %7 = cast(%5) {dtype = f16} : f16[2, N, 5]
  %8 = gelu(%7) : f16[2, N, 5]
  %9 = concat(%2, %2) {axis = 2} : f32[2, N, 6]
  %10 = iota() {shape = [N, 3], axis = 1} : i32[N, 3]
  %11 = numel() {shape = [N, 3]} : i32[]
  output "m" = %6
  output "g" = %8
  output "c" = %9
  output "i" = %10
  output "n" = %11
}`;

/** Chains over bf16, i8, u8 and bool, with a maximum (the NaN rule) and integer division. */
const DTYPES = `graph g [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = cast(%0) {dtype = bf16} : bf16[N, 4]
  %2 = mul(%1, %1) : bf16[N, 4]
  %3 = cast(%0) {dtype = i8} : i8[N, 4]
  %4 = add(%3, %3) : i8[N, 4]
  %5 = div(%4, %3) : i8[N, 4]
  %6 = cast(%0) {dtype = u8} : u8[N, 4]
  %7 = sub(%6, %6) : u8[N, 4]
  %8 = lt(%0, %0) : bool[N, 4]
  %9 = add(%8, %8) : bool[N, 4]
  %10 = maximum(%0, %0) : f32[N, 4]
  %11 = sum(%6) {axes = [1]} : u8[N]
  output "b" = %2
  output "d" = %5
  output "u" = %7
  output "k" = %9
  output "x" = %10
  output "s" = %11
}`;

/** Every kernel family, unfused and fused, as one CUDA source with distinct kernel names; the reductions also a block per row. */
function cudaSource(): string {
  const graphs = [FAMILIES, DTYPES].map((t) => parseGraph(t)).flatMap((g) => [g, fuseElementwise(decompose(g))]);
  const cooperation: Cooperation = { workgroupSize: CUDA_BLOCK, reductions: "cooperative" };
  const kernels = graphs.flatMap((g, i) => [...gpuKernels(g, `g${i}_`), ...gpuKernels(g, `c${i}_`, cooperation).filter((k) => k.workgroupSize)]);
  const rendered = kernels.map((k) => renderKernel(k, cudaLanguage));
  const helpers = new Set(rendered.flatMap((r) => [...r.helpers]));
  return [CUDA_PRELUDE, ...renderHelpers(helpers, cudaLanguage), ...rendered.map((r) => r.source)].join("\n\n");
}

const findTool = (name: string, ...more: string[]): string | undefined =>
  [...more, ...(process.env.PATH ?? "").split(":").map((d) => join(d, name))].find((p) => existsSync(p));

/**
 * Just enough of CUDA for g++ to run a kernel on one CPU thread: the grid-stride loop then
 * walks the whole grid. (The CPU emulation header of issue 10 is the real one.)
 */
const CPU_SHIM = `#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#define __global__
#define __device__
struct Dim3 { unsigned int x, y, z; };
static const Dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static int atomicCAS(int* p, int expected, int value) { int old = *p; if (old == expected) *p = value; return old; }
static unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
static float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
static void* readBuffer(size_t bytes, int* n) { if (fread(n, 4, 1, stdin) != 1) exit(2); void* p = calloc(*n + 1, bytes); if (fread(p, bytes, *n, stdin) != (size_t)*n) exit(2); return p; }`;

type Numbers = Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;
const ARRAYS: Record<DType, { new (n: number): Numbers; new (buffer: ArrayBuffer): Numbers; from(xs: ArrayLike<number>): Numbers }> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };

/** Inputs with NaN, infinities and signed zeros among small floats, and indices partly out of range. */
function fill(dtype: DType, n: number, seed: number) {
  const SPECIAL = [NaN, Infinity, -Infinity, -0, 0];
  const values = Array.from({ length: n }, (_, i) => Math.sin(seed * 131 + i * 2.3) * 4);
  return ARRAYS[dtype].from(values.map((v, i) => (dtype === "i32" ? Math.round(v * 2) : i % 7 === 3 ? SPECIAL[(i + seed) % 5] : v)));
}

describe("the language tables on every kernel family", () => {
  it("WGSL keeps the IR's NaN rule for max, packs 8- and 16-bit stores atomically and records errors first-writer-wins", () => {
    const ks = [FAMILIES, DTYPES].flatMap((t) => gpuKernels(parseGraph(t))).map((k) => source(k, wgslLanguage));
    const all = ks.join("\n");
    expect(all).toContain("select(max(v0, v1), v0 + v1, ((bitcast<u32>(v0) & 0x7fffffffu) > 0x7f800000u) || ((bitcast<u32>(v1) & 0x7fffffffu) > 0x7f800000u))");
    expect(all).toContain("var<storage, read_write> out: array<atomic<u32>>");
    expect(all).toMatch(/atomicAnd\(&out\[u32\(i0\) \/ 4u\], ~\(0xffu << packed_shift\)\)/);
    expect(all).toContain("atomicCompareExchangeWeak(&errors[0], 0i, 1i)");
    expect(all).not.toMatch(/\bf64\b|\bdouble\b/);
  });

  it("CUDA keeps the IR's NaN rule for max and records errors with atomicCAS", () => {
    const all = cudaSource();
    expect(all).toContain("((isnan(v0) || isnan(v1)) ? v0 + v1 : fmaxf(v0, v1))");
    expect(all).toContain("if (atomicCAS(errors, 0, 1) == 0) { errors[1] = index; errors[2] = 6; }");
    expect(all).toMatch(/erff\(/);
  });

  it("nvcc compiles the CUDA source of every kernel family for sm_80 and sm_90, without warnings", async () => {
    const nvcc = findTool("nvcc", "/usr/local/cuda/bin/nvcc");
    if (!nvcc) {
      if (process.env.CI === "true") throw new Error("nvcc is missing on CI: the CUDA compile check cannot run");
      console.warn("\n*** nvcc not found: the CUDA kernels were NOT compiled (install the CUDA toolkit to run this check) ***\n");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "difftc-cuda-"));
    try {
      const file = join(dir, "kernels.cu");
      writeFileSync(file, cudaSource());
      const compile = (arch: string) => promisify(execFile)(nvcc, ["-cubin", `-arch=${arch}`, "-Werror", "all-warnings", "-o", join(dir, `${arch}.cubin`), file]);
      const results = await Promise.all(["sm_80", "sm_90"].map(compile));
      for (const { stderr } of results) expect(stderr).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the CUDA source on the CPU", () => {
  it("built by g++ with a one-thread shim, every kernel family agrees with the JS table: integers, bools and errors exactly, floats to float rounding", () => {
    const gxx = findTool("g++");
    if (!gxx) return console.warn("\n*** g++ not found: the CUDA kernels were NOT run on the CPU ***\n");
    const dims = new Map([["N", 5]]);
    const cases = [FAMILIES, DTYPES].map((t) => parseGraph(t)).flatMap((g) => [g, fuseElementwise(decompose(g))]).flatMap((g, gi) => {
      const plan = schedule(g);
      return plan.kernels.map((pk, ki) => ({ plan, pk, kernel: gpuKernels(g, `g${gi}_`)[ki] }));
    });
    const rendered = cases.map((c) => renderKernel(c.kernel, cudaLanguage));
    const helpers = new Set(rendered.flatMap((r) => [...r.helpers]));
    const runners = cases.map(({ kernel: k }, i) => {
      const reads = k.buffers.map((b) => `${b.access === "read" ? "const " : ""}auto ${b.name} = (${CUDA_STORAGE[b.dtype]}*)readBuffer(${BYTES[b.dtype]}, &n_${b.name});`);
      const args = [...k.buffers.map((b) => b.name), ...k.dims.map((_, d) => `dims[${d}]`), ...(k.errors.length ? ["errors"] : [])];
      return `case ${i}: { ${k.buffers.map((b) => `int n_${b.name};`).join(" ")} int dims[8]; if (fread(dims, 4, ${k.dims.length}, stdin) != ${k.dims.length}) return 2; ${reads.join(" ")} ${k.name}(${args.join(", ")}); fwrite(out, ${BYTES[k.buffers[0].dtype]}, n_out, stdout); break; }`;
    });
    const main = `int main(int argc, char** argv) { int errors[4] = {0, 0, 0, 0}; switch (atoi(argv[1])) { ${runners.join("\n")} } fwrite(errors, 4, 4, stdout); return 0; }`;
    const dir = mkdtempSync(join(tmpdir(), "difftc-cpu-"));
    try {
      writeFileSync(join(dir, "kernels.cpp"), [CPU_SHIM, CUDA_PRELUDE, ...renderHelpers(helpers, cudaLanguage), ...rendered.map((r) => r.source), main].join("\n\n"));
      execFileSync(gxx, ["-O1", "-w", "-o", join(dir, "kernels"), join(dir, "kernels.cpp")]);
      let failures = 0;
      cases.forEach(({ plan, pk, kernel }, i) => {
        const size = (id: number) => evalMonomial(plan.buffers[id].size, dims);
        const outType = plan.buffers[pk.output].dtype;
        const inputs = pk.inputs.map((id, k) => fill(plan.buffers[id].dtype, size(id), i * 10 + k));
        const dimValues = kernel.dims.map((d) => dims.get(d)!);
        const stdin = Buffer.concat([Int32Array.from(dimValues), ...[new ARRAYS[outType](size(pk.output)), ...inputs].flatMap((a) => [Int32Array.of(a.length), a])].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
        const stdout = execFileSync(join(dir, "kernels"), [String(i)], { input: stdin });
        const bytes = Uint8Array.from(stdout);
        const out = new ARRAYS[outType](bytes.slice(0, bytes.length - 16).buffer);
        const cErrors = [...new Int32Array(bytes.slice(bytes.length - 16).buffer)];
        const js = renderKernel(kernel, jsLanguage);
        const expected = new ARRAYS[outType](size(pk.output));
        const jsErrors = new Int32Array(4);
        jsKernelFunction(kernel)(expected, ...inputs, ...dimValues, jsErrors);
        expect(cErrors, `${kernel.name} errors`).toEqual([...jsErrors]);
        failures += cErrors[0] === 0 ? 0 : 1;
        const decode = outType === "f16" ? f16FromBits : outType === "bf16" ? bf16FromBits : (x: number) => x;
        const tolerance = outType === "f32" ? 2 ** -20 : outType === "f16" || outType === "bf16" ? 2 ** -7 : 0;
        expected.forEach((e, j) => {
          const [a, b] = [decode(out[j]), decode(e)];
          const close = Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) <= tolerance * Math.max(1, Math.abs(b));
          expect(close, `${kernel.name}[${j}]: CUDA on the CPU ${a}, JS ${b}`).toBe(true);
        });
      });
      // The gathers, fused and unfused, meet out-of-range indices.
      expect(failures).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
