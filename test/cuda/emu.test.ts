// The CPU emulation of CUDA (backends/cuda/runtime/difftc_cuda_emu.h, picked by difftc_cuda.h when
// the compiler is not nvcc): small CUDA programs built with g++ against it run on the CPU with the
// results a GPU gives. Block barriers with shared memory, warp shuffles and votes, atomics across
// blocks and worker threads, a tiled matmul; both scheduling orders and 1 or 2 workers agree;
// divergent barriers and deadlocks abort with a message instead of hanging. The same sources
// compile with nvcc, so they are valid CUDA, not a dialect of the emulator.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const RUNTIME = new URL("../../backends/cuda/runtime/", import.meta.url).pathname;

const findTool = (name: string, ...more: string[]): string | undefined =>
  [...more, ...(process.env.PATH ?? "").split(":").map((d) => join(d, name))].find((p) => existsSync(p));

/** Missing tools fail on CI and skip loudly elsewhere, as everywhere in the suite. */
function missing(what: string, checks: string): void {
  if (process.env.CI === "true") throw new Error(`${what} is missing on CI: ${checks} cannot run`);
  console.warn(`\n*** ${what} not found: ${checks} did NOT run ***\n`);
}

// The main test program: one case per argv[1]; each checks its own results and prints a line.
// Lines marked "site:NAME" are the call sites the abort messages must name.
const PROGRAM = String.raw`// difftc CPU-emulation test program. Valid CUDA: nvcc compiles it too.
#include "difftc_cuda.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <chrono>
#include <vector>

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { printf("FAIL %s: %s\n", #call, cudaGetErrorString(e_)); exit(1); } } while (0)
#define EXPECT(cond, ...) do { if (!(cond)) { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); exit(1); } } while (0)

template <class T> static T* upload(const std::vector<T>& h) {
  T* d = nullptr;
  CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
  CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T> static std::vector<T> download(const T* d, size_t n) {
  std::vector<T> h(n);
  CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// ---- block reduction: a shared-memory tree with __syncthreads
__global__ void block_sum(const int* in, int* out, int n) {
  __shared__ int partial[256];
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  partial[t] = i < n ? in[i] : 0;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) partial[t] += partial[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}
static int case_reduce() {
  const int n = 8 * 256 - 37, blocks = 8;
  std::vector<int> h(n);
  for (int i = 0; i < n; ++i) h[i] = (i * 7919) % 1000 - 500;
  int* in = upload(h);
  int* out = nullptr;
  CHECK(cudaMalloc(&out, blocks * sizeof(int)));
  DIFFTC_LAUNCH(block_sum, dim3(blocks), dim3(256), 0, in, out, n);
  CHECK(cudaGetLastError());
  std::vector<int> got = download(out, blocks);
  for (int b = 0; b < blocks; ++b) {
    int want = 0;
    for (int i = b * 256; i < (b + 1) * 256 && i < n; ++i) want += h[i];
    EXPECT(got[b] == want, "block %d: %d, want %d", b, got[b], want);
  }
  printf("reduce");
  for (int b = 0; b < blocks; ++b) printf(" %d", got[b]);
  printf("\n");
  CHECK(cudaFree(in));
  CHECK(cudaFree(out));
  return 0;
}

// ---- warp shuffles: down/xor reductions, a broadcast, an inclusive scan, on a 2-D block
__device__ __forceinline__ float warp_sum_down(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ int warp_max_xor(int v) {
  for (int o = 16; o > 0; o >>= 1) { int u = __shfl_xor_sync(0xffffffffu, v, o); v = u > v ? u : v; }
  return v;
}
__global__ void warp_ops(const float* x, const int* k, float* sum, int* mx, double* bcast, unsigned* scan) {
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  const int i = blockIdx.x * blockDim.x * blockDim.y + t;
  const int lane = t % warpSize;
  float s = warp_sum_down(x[i]);
  int m = warp_max_xor(k[i]);
  double b = __shfl_sync(0xffffffffu, (double)x[i] * 2.0, 5);
  unsigned v = (unsigned)(k[i] & 15);
  for (int o = 1; o < 32; o <<= 1) { unsigned u = __shfl_up_sync(0xffffffffu, v, o); if (lane >= o) v += u; }
  if (lane == 0) sum[i / 32] = s;
  mx[i] = m;
  bcast[i] = b;
  scan[i] = v;
}
// 48 threads: the second warp has 16 lanes; xor within segments of width 16 stays inside it
__global__ void segment_sums(const int* k, int* out) {
  int v = k[threadIdx.x];
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, 16);
  out[threadIdx.x] = v;
}
static int case_shuffle() {
  const int blocks = 3, per = 128, n = blocks * per;
  std::vector<float> hx(n);
  std::vector<int> hk(n);
  for (int i = 0; i < n; ++i) { hx[i] = (float)((i * 37) % 101) * 0.25f; hk[i] = (i * 7717) % 1009 - 300; }
  float* x = upload(hx);
  int* k = upload(hk);
  float* sum; int* mx; double* bc; unsigned* sc; int* seg;
  CHECK(cudaMalloc(&sum, n / 32 * sizeof(float)));
  CHECK(cudaMalloc(&mx, n * sizeof(int)));
  CHECK(cudaMalloc(&bc, n * sizeof(double)));
  CHECK(cudaMalloc(&sc, n * sizeof(unsigned)));
  CHECK(cudaMalloc(&seg, 48 * sizeof(int)));
  DIFFTC_LAUNCH(warp_ops, dim3(blocks), dim3(32, 4), 0, x, k, sum, mx, bc, sc);
  CHECK(cudaGetLastError());
  DIFFTC_LAUNCH(segment_sums, 1, 48, 0, k, seg);
  CHECK(cudaGetLastError());
  std::vector<float> gs = download(sum, n / 32);
  std::vector<int> gm = download(mx, n), gseg = download(seg, 48);
  std::vector<double> gb = download(bc, n);
  std::vector<unsigned> gsc = download(sc, n);
  double total = 0;
  for (int w = 0; w < n / 32; ++w) {
    // the shuffle-down tree in float: lanes past the end read their own value
    float v[32];
    for (int l = 0; l < 32; ++l) v[l] = hx[w * 32 + l];
    for (int o = 16; o > 0; o >>= 1) for (int l = 0; l < 32; ++l) v[l] = v[l] + (l + o < 32 ? v[l + o] : v[l]);
    EXPECT(gs[w] == v[0], "warp %d sum %g, want %g", w, gs[w], v[0]);
    total += gs[w];
    int m = hk[w * 32];
    unsigned run = 0;
    for (int l = 0; l < 32; ++l) m = hk[w * 32 + l] > m ? hk[w * 32 + l] : m;
    for (int l = 0; l < 32; ++l) {
      const int i = w * 32 + l;
      run += (unsigned)(hk[i] & 15);
      EXPECT(gm[i] == m, "lane %d max %d, want %d", i, gm[i], m);
      EXPECT(gb[i] == (double)hx[w * 32 + 5] * 2.0, "lane %d broadcast %g", i, gb[i]);
      EXPECT(gsc[i] == run, "lane %d scan %u, want %u", i, gsc[i], run);
    }
  }
  for (int i = 0; i < 48; ++i) {
    int want = 0;
    for (int j = i / 16 * 16; j < i / 16 * 16 + 16; ++j) want += hk[j];
    EXPECT(gseg[i] == want, "segment sum at %d: %d, want %d", i, gseg[i], want);
  }
  printf("shuffle %.2f %d %d %d\n", total, gseg[0], gseg[16], gseg[32]);
  CHECK(cudaFree(x)); CHECK(cudaFree(k)); CHECK(cudaFree(sum)); CHECK(cudaFree(mx)); CHECK(cudaFree(bc)); CHECK(cudaFree(sc)); CHECK(cudaFree(seg));
  return 0;
}

// ---- atomics across many blocks, so across the workers
__global__ void count_atomics(int* count, unsigned* ucount, float* fsum, double* dsum, int* hi, int* lo, int* first, int* swapped) {
  const int id = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(count, 1);
  atomicAdd(ucount, 2u);
  atomicAdd(fsum, 1.0f);
  atomicAdd(dsum, 0.5);
  atomicMax(hi, (id * 7919) % 100003);
  atomicMin(lo, (id * 7919) % 100003 - 5);
  if (atomicCAS(first, -1, id) == -1) atomicExch(swapped, id);
}
static int case_atomics() {
  const int blocks = 512, threads = 256, total = blocks * threads;
  std::vector<int> init = {0, 0, -2147483647 - 1, 2147483647, -1, -1};
  int* ints = upload(init);
  unsigned* u; float* f; double* d;
  CHECK(cudaMalloc(&u, sizeof(unsigned))); CHECK(cudaMemset(u, 0, sizeof(unsigned)));
  CHECK(cudaMalloc(&f, sizeof(float))); CHECK(cudaMemset(f, 0, sizeof(float)));
  CHECK(cudaMalloc(&d, sizeof(double))); CHECK(cudaMemset(d, 0, sizeof(double)));
  DIFFTC_LAUNCH(count_atomics, blocks, threads, 0, ints, u, f, d, ints + 2, ints + 3, ints + 4, ints + 5);
  CHECK(cudaGetLastError());
  std::vector<int> gi = download(ints, 6);
  unsigned gu; float gf; double gd;
  CHECK(cudaMemcpy(&gu, u, sizeof gu, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(&gf, f, sizeof gf, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(&gd, d, sizeof gd, cudaMemcpyDeviceToHost));
  int want_hi = -1, want_lo = 1 << 30;
  for (int id = 0; id < total; ++id) { int v = (id * 7919) % 100003; want_hi = v > want_hi ? v : want_hi; want_lo = v - 5 < want_lo ? v - 5 : want_lo; }
  EXPECT(gi[0] == total, "atomicAdd count %d, want %d", gi[0], total);
  EXPECT(gu == 2u * total, "unsigned count %u", gu);
  EXPECT(gf == (float)total, "float sum %g", gf);
  EXPECT(gd == total * 0.5, "double sum %g", gd);
  EXPECT(gi[2] == want_hi && gi[3] == want_lo, "max %d min %d, want %d %d", gi[2], gi[3], want_hi, want_lo);
  EXPECT(gi[4] >= 0 && gi[4] < total && gi[5] == gi[4], "first %d swapped %d", gi[4], gi[5]);
  printf("atomics %d %u %g %g %d %d\n", gi[0], gu, gf, gd, gi[2], gi[3]);
  CHECK(cudaFree(ints)); CHECK(cudaFree(u)); CHECK(cudaFree(f)); CHECK(cudaFree(d));
  return 0;
}

// ---- tiled matmul with shared tiles: C[M,N] = A[M,K] B[K,N]
#define TILE 16
extern "C" __global__ void matmul_tiled(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c, int m, int n, int k) {
  __shared__ float as[TILE][TILE];
  __shared__ float bs[TILE][TILE];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < k; k0 += TILE) {
    as[ty][tx] = row < m && k0 + tx < k ? a[row * k + k0 + tx] : 0.0f;
    bs[ty][tx] = col < n && k0 + ty < k ? b[(k0 + ty) * n + col] : 0.0f;
    __syncthreads();
    for (int kk = 0; kk < TILE; ++kk) acc += as[ty][kk] * bs[kk][tx];
    __syncthreads();
  }
  if (row < m && col < n) c[row * n + col] = acc;
}
static int matmul(int m, int n, int k, bool check, int repeats) {
  std::vector<float> ha((size_t)m * k), hb((size_t)k * n);
  for (size_t i = 0; i < ha.size(); ++i) ha[i] = (float)((i * 13) % 17) / 8.0f - 1.0f;
  for (size_t i = 0; i < hb.size(); ++i) hb[i] = (float)((i * 7) % 23) / 11.0f - 1.0f;
  float* a = upload(ha);
  float* b = upload(hb);
  float* c;
  CHECK(cudaMalloc(&c, (size_t)m * n * sizeof(float)));
  const dim3 grid((n + TILE - 1) / TILE, (m + TILE - 1) / TILE), block(TILE, TILE);
  printf("matmul %dx%dx%d", m, n, k);
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    DIFFTC_LAUNCH(matmul_tiled, grid, block, 0, a, b, c, m, n, k);
    CHECK(cudaDeviceSynchronize());
    printf(" ms %.1f", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  CHECK(cudaGetLastError());
  std::vector<float> hc = download(c, (size_t)m * n);
  double sum = 0;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const float got = hc[(size_t)i * n + j];
      sum += got;
      if (!check) continue;
      float want = 0.0f;
      for (int kk = 0; kk < k; ++kk) want += ha[(size_t)i * k + kk] * hb[(size_t)kk * n + j];
      EXPECT(fabsf(got - want) <= 1e-4f * (1.0f + fabsf(want)), "c[%d][%d] = %.9g, want %.9g", i, j, got, want);
    }
  printf(" sum %.4f\n", sum);
  CHECK(cudaFree(a)); CHECK(cudaFree(b)); CHECK(cudaFree(c));
  return 0;
}

// ---- which thread and which block run first (tells the scheduling orders apart)
__global__ void first_runs(int* ticket, int* thread_ticket, int* block_ticket) {
  const int t = atomicAdd(ticket, 1);
  thread_ticket[blockIdx.x * blockDim.x + threadIdx.x] = t;
  if (threadIdx.x == 0) block_ticket[blockIdx.x] = t;
}
static int case_order() {
  int *ticket, *tt, *bt;
  CHECK(cudaMalloc(&ticket, sizeof(int))); CHECK(cudaMemset(ticket, 0, sizeof(int)));
  CHECK(cudaMalloc(&tt, 4 * 64 * sizeof(int)));
  CHECK(cudaMalloc(&bt, 4 * sizeof(int)));
  DIFFTC_LAUNCH(first_runs, 4, 64, 0, ticket, tt, bt);
  std::vector<int> t = download(tt, 4 * 64), b = download(bt, 4);
  int first_block = 0;
  for (int i = 1; i < 4; ++i) if (b[i] < b[first_block]) first_block = i;
  printf("order first-thread %s first-block %d\n", t[0] < t[63] ? "0" : "63", first_block);
  return 0;
}

// ---- a kernel that never waits: a million threads, each run to completion in turn
__global__ void saxpy(float* y, const float* x, float a, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = a * x[i] + y[i];
}
static int case_saxpy() {
  const int n = 1 << 20;
  std::vector<float> hx(n), hy(n);
  for (int i = 0; i < n; ++i) { hx[i] = (float)(i % 1000); hy[i] = 1.0f; }
  float* x = upload(hx);
  float* y = upload(hy);
  auto start = std::chrono::steady_clock::now();
  DIFFTC_LAUNCH(saxpy, (n + 255) / 256, 256, 0, y, x, 2.0f, n);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::vector<float> gy = download(y, n);
  for (int i = 0; i < n; ++i) EXPECT(gy[i] == 2.0f * hx[i] + 1.0f, "y[%d] = %g", i, gy[i]);
  printf("saxpy %d threads ms %.1f\n", n, ms);
  CHECK(cudaFree(x)); CHECK(cudaFree(y));
  return 0;
}

// ---- math intrinsics, votes, a 3-D block and the host API
__global__ void intrinsics(float* out) {
  const float nan = NAN;
  out[0] = __uint_as_float(__float_as_uint(-1.5f));
  out[1] = __int_as_float(__float_as_int(3.25f));
  out[2] = rsqrtf(4.0f);
  out[3] = __expf(1.0f);
  out[4] = __logf(8.0f);
  out[5] = __fdividef(1.0f, 3.0e38f);  // 2^126 < |y| < 2^128: 0 on the GPU
  out[6] = __fdividef(6.0f, 3.0f);
  out[7] = fmaxf(nan, 2.0f);  // the other operand, not NaN
  out[8] = fminf(1.0f, nan);
  out[9] = isnan(nan) ? 1.0f : 0.0f;
  out[10] = INFINITY;
  out[11] = (float)(__float_as_uint(1.0f) == 0x3f800000u);
  // Bytes (low first) 2, 127, -1 or 255, -128 or 128 against -1 or 255, 127, 3, 2, plus 5.
  out[12] = (float)__dp4a((int)0x80ff7f02u, (int)0x02037fffu, 5);
  out[13] = (float)__dp4a(0x80ff7f02u, 0x02037fffu, 5u);
}
__global__ void votes(int* out) {
  const int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const int count = __syncthreads_count(t % 3 == 0);
  const unsigned ballot = __ballot_sync(0xffffffffu, t & 1);
  const int any = __any_sync(0xffffffffu, t == 40);
  const int all = __all_sync(0xffffffffu, t < 32);
  out[t] = t == (int)(threadIdx.x + 8 * threadIdx.y + 32 * threadIdx.z) ? count * 1000 + (ballot == 0xaaaaaaaau) * 100 + any * 10 + all : -1;
}
__global__ void never_runs(int* p) { *p = 1; }
static int case_intrinsics() {
  float* d;
  CHECK(cudaMalloc(&d, 14 * sizeof(float)));
  DIFFTC_LAUNCH(intrinsics, 1, 1, 0, d);
  CHECK(cudaGetLastError());
  std::vector<float> o = download(d, 14);
  EXPECT(o[12] == 15873.0f && o[13] == 17665.0f, "__dp4a signed %g unsigned %g", o[12], o[13]);
  EXPECT(o[0] == -1.5f && o[1] == 3.25f && o[2] == 0.5f, "bit casts / rsqrtf: %g %g %g", o[0], o[1], o[2]);
  EXPECT(fabsf(o[3] - 2.7182817f) < 1e-5f && fabsf(o[4] - 2.0794415f) < 1e-5f, "__expf %g __logf %g", o[3], o[4]);
  EXPECT(o[5] == 0.0f && fabsf(o[6] - 2.0f) < 1e-6f, "__fdividef %g %g", o[5], o[6]);
  EXPECT(o[7] == 2.0f && o[8] == 1.0f && o[9] == 1.0f && isinf(o[10]) && o[11] == 1.0f, "fmaxf %g fminf %g isnan %g inf %g", o[7], o[8], o[9], o[10]);
  int* v;
  CHECK(cudaMalloc(&v, 64 * sizeof(int)));
  DIFFTC_LAUNCH(votes, 1, dim3(8, 4, 2), 0, v);
  std::vector<int> gv = download(v, 64);
  for (int t = 0; t < 64; ++t) EXPECT(gv[t] == 22000 + 100 + 10 * (t < 32 ? 0 : 1) + (t < 32 ? 1 : 0), "votes of thread %d: %d", t, gv[t]);
  // an invalid launch sets the last error and runs nothing
  int* p;
  CHECK(cudaMalloc(&p, sizeof(int)));
  CHECK(cudaMemset(p, 0, sizeof(int)));
  DIFFTC_LAUNCH(never_runs, 1, 2048, 0, p);
  cudaError_t e = cudaGetLastError();
  EXPECT(e == cudaErrorInvalidConfiguration, "launch of 2048 threads: %s", cudaGetErrorString(e));
  EXPECT(cudaGetLastError() == cudaSuccess, "cudaGetLastError resets the error");
  int x = -1;
  CHECK(cudaMemcpy(&x, p, sizeof x, cudaMemcpyDeviceToHost));
  EXPECT(x == 0, "the invalid launch ran");
  EXPECT(strcmp(cudaGetErrorString(cudaSuccess), "no error") == 0, "cudaGetErrorString(cudaSuccess)");
  cudaStream_t stream = 0;
  CHECK(cudaStreamSynchronize(stream));
  CHECK(cudaFree(p)); CHECK(cudaFree(v)); CHECK(cudaFree(d));
  printf("intrinsics ok\n");
  return 0;
}

// ---- failures: each must abort with a message, never hang
__global__ void divergent_sites(int* out) {
  if (threadIdx.x < 3) {
    __syncthreads();  // site:low
  } else {
    __syncthreads();  // site:high
  }
  out[threadIdx.x] = 1;
}
__global__ void divergent_exit(int* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();  // site:exit
  out[threadIdx.x] = 1;
}
__global__ void deadlock(int* out) {
  // half of warp 0 waits at the block barrier, the other half at a warp barrier: neither completes
  if (threadIdx.x < 16 || threadIdx.x >= 32) __syncthreads();  // site:block
  else __syncwarp();  // site:warp
  out[threadIdx.x] = 1;
}
__global__ void partial_mask(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, (int)threadIdx.x, 1);
}
static int case_fail(const char* which) {
  int* out;
  CHECK(cudaMalloc(&out, 64 * sizeof(int)));
  if (!strcmp(which, "divergent")) DIFFTC_LAUNCH(divergent_sites, 1, 64, 0, out);
  else if (!strcmp(which, "exited")) DIFFTC_LAUNCH(divergent_exit, 2, 64, 0, out);
  else if (!strcmp(which, "deadlock")) DIFFTC_LAUNCH(deadlock, 1, 64, 0, out);
  else if (!strcmp(which, "mask")) DIFFTC_LAUNCH(partial_mask, 1, 32, 0, out);
  else if (!strcmp(which, "smem")) DIFFTC_LAUNCH(saxpy, 1, 32, 1024, (float*)out, (const float*)out, 1.0f, 0);
  else if (!strcmp(which, "oob")) {  // one element past the end: for AddressSanitizer to see
    float* small;
    CHECK(cudaMalloc(&small, 100 * sizeof(float)));
    DIFFTC_LAUNCH(saxpy, 1, 128, 0, small, (const float*)small, 1.0f, 101);
  }
  else { printf("unknown case %s\n", which); return 64; }
  CHECK(cudaDeviceSynchronize());
  printf("no abort\n");
  return 0;
}

int second_unit();  // in the second translation unit

int main(int argc, char** argv) {
  const char* c = argc > 1 ? argv[1] : "";
  if (!strcmp(c, "reduce")) return case_reduce();
  if (!strcmp(c, "shuffle")) return case_shuffle();
  if (!strcmp(c, "atomics")) return case_atomics();
  if (!strcmp(c, "matmul64")) return matmul(64, 64, 64, true, 1);
  if (!strcmp(c, "matmul256")) return matmul(256, 256, 256, false, 3);
  if (!strcmp(c, "order")) return case_order();
  if (!strcmp(c, "saxpy")) return case_saxpy();
  if (!strcmp(c, "intrinsics")) return case_intrinsics();
  if (!strcmp(c, "all")) return case_reduce() || case_shuffle() || case_atomics() || matmul(64, 64, 64, true, 1) || matmul(50, 37, 45, true, 1) || case_intrinsics() || second_unit();
  return case_fail(c);
}
`;

// A second translation unit: the header links twice without duplicate symbols, and a kernel
// there shares shared-memory names with nothing.
const SECOND = String.raw`#include "difftc_cuda.h"
#include <stdio.h>

__global__ void block_histogram(const int* in, int* bins, int n) {
  __shared__ int local[8];
  if (threadIdx.x < 8) local[threadIdx.x] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&local[in[i] & 7], 1);
  __syncthreads();
  if (threadIdx.x < 8) atomicAdd(&bins[threadIdx.x], local[threadIdx.x]);
}

int second_unit() {
  const int n = 10000;
  static int h[n];
  int want[8] = {0}, got[8];
  int *in, *bins;
  for (int i = 0; i < n; ++i) { h[i] = i * 31 % 97; want[h[i] & 7]++; }
  if (cudaMalloc(&in, sizeof h) != cudaSuccess || cudaMalloc(&bins, sizeof got) != cudaSuccess) return 1;
  cudaMemcpy(in, h, sizeof h, cudaMemcpyHostToDevice);
  cudaMemset(bins, 0, sizeof got);
  DIFFTC_LAUNCH(block_histogram, 7, 96, 0, in, bins, n);
  cudaMemcpy(got, bins, sizeof got, cudaMemcpyDeviceToHost);
  for (int b = 0; b < 8; ++b) if (got[b] != want[b]) { printf("FAIL bin %d: %d, want %d\n", b, got[b], want[b]); return 1; }
  printf("histogram ok\n");
  cudaFree(in);
  cudaFree(bins);
  return 0;
}
`;

/** The line of PROGRAM holding a "site:NAME" marker, as __LINE__ numbers it. */
const site = (name: string) => `emu.cu:${PROGRAM.split("\n").findIndex((l) => l.includes(`// site:${name}`)) + 1}`;

const gxx = findTool("g++");
let dir = "";
let buildError: unknown;
const EXE = { fibers: "", debug: "", ucontext: "", asan: "" };
let asanError: unknown;

beforeAll(async () => {
  if (!gxx) return;
  dir = mkdtempSync(join(tmpdir(), "difftc-emu-"));
  writeFileSync(join(dir, "emu.cu"), PROGRAM);
  writeFileSync(join(dir, "emu2.cu"), SECOND);
  EXE.fibers = join(dir, "emu");
  EXE.debug = join(dir, "emu-O0");
  EXE.ucontext = join(dir, "emu-ucontext");
  const exec = promisify(execFile);
  const build = (out: string, flags: string[]) =>
    exec(gxx, [...flags, "-std=c++17", "-pthread", "-x", "c++", "-I", RUNTIME, "-o", out, "emu.cu", "emu2.cu"], { cwd: dir, timeout: 120_000 });
  // The x86-64 fibers, warning-free, optimised and not; the portable ucontext fallback; and
  // AddressSanitizer where gcc has it (optional: its absence only skips that check).
  const asan = join(dir, "emu-asan");
  const builds = [build(EXE.fibers, ["-O2", "-Wall", "-Wextra", "-Werror"]), build(EXE.debug, ["-O0", "-g"]), build(EXE.ucontext, ["-O1", "-DDIFFTC_EMU_UCONTEXT"]), build(asan, ["-O1", "-g", "-fsanitize=address"])];
  const [fibers, debug, ucontext, sanitized] = await Promise.allSettled(builds);
  for (const b of [fibers, debug, ucontext]) if (b.status === "rejected") buildError ??= b.reason;
  if (sanitized.status === "fulfilled") EXE.asan = asan;
  else asanError = sanitized.reason;
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a built test program (cwd: the temp dir, so __FILE__ is "emu.cu"), never for more than `timeout` ms. */
function run(exe: string, args: string[], env: Record<string, string> = {}, timeout = 30_000): Run {
  const r = spawnSync(exe, args, { cwd: dir, encoding: "utf8", timeout, env: { ...process.env, DIFFTC_EMU_ORDER: "", DIFFTC_EMU_THREADS: "", ...env } });
  if (r.error) throw new Error(`${exe} ${args.join(" ")}: ${r.error.message} (a hang, if it timed out)`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A run that must succeed: its stdout. */
function ok(exe: string, args: string[], env: Record<string, string> = {}): string {
  const r = run(exe, args, env);
  expect(r.status, `${args.join(" ")} failed: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).not.toContain("FAIL");
  return r.stdout;
}

/** Timings vary between runs; everything else must not. */
const results = (stdout: string) => stdout.replace(/ ms [\d.]+/g, "");

function ready(): boolean {
  if (!gxx) {
    missing("g++", "the CPU emulation tests");
    return false;
  }
  if (buildError) throw buildError;
  return true;
}

describe("the CPU emulation of CUDA (g++ against difftc_cuda.h)", () => {
  it("reduces a block through shared memory and __syncthreads", () => {
    if (!ready()) return;
    const stdout = ok(EXE.fibers, ["reduce"]);
    // the same sums, independently
    const n = 8 * 256 - 37;
    const h = Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) - 500);
    const sums = Array.from({ length: 8 }, (_, b) => h.slice(b * 256, (b + 1) * 256).reduce((a, x) => a + x, 0));
    expect(stdout.trim()).toBe(`reduce ${sums.join(" ")}`);
  });

  it("reduces, broadcasts and scans across warps with the shuffles, full warps and a 16-lane one", () => {
    if (!ready()) return;
    expect(ok(EXE.fibers, ["shuffle"])).toMatch(/^shuffle [\d.]+ -?\d+ -?\d+ -?\d+\n$/);
  });

  it("counts every thread of 512 blocks with atomics, on 1 and 2 workers", () => {
    if (!ready()) return;
    const want = "atomics 131072 262144 131072 65536 100002 -5\n";
    expect(ok(EXE.fibers, ["atomics"], { DIFFTC_EMU_THREADS: "1" })).toBe(want);
    expect(ok(EXE.fibers, ["atomics"], { DIFFTC_EMU_THREADS: "2" })).toBe(want);
  });

  it("multiplies 64x64 matrices with shared tiles as a CPU loop does", () => {
    if (!ready()) return;
    expect(ok(EXE.fibers, ["matmul64"])).toMatch(/^matmul 64x64x64 ms [\d.]+ sum -?[\d.]+\n$/);
  });

  it("evaluates the math intrinsics (__dp4a signed and unsigned among them), votes and a 3-D block as the GPU does, and reports launch errors", () => {
    if (!ready()) return;
    expect(ok(EXE.fibers, ["intrinsics"])).toBe("intrinsics ok\n");
  });

  it("gives the same results in both scheduling orders, on 1 and 2 workers, unoptimised and with the ucontext fallback", () => {
    if (!ready()) return;
    const runs = ["forward", "reverse"].flatMap((order) => ["1", "2"].map((threads) => ({ order, threads, out: ok(EXE.fibers, ["all"], { DIFFTC_EMU_ORDER: order, DIFFTC_EMU_THREADS: threads }) })));
    const reference = results(runs[0].out);
    expect(reference.split("\n")).toHaveLength(8);
    for (const r of runs) expect(results(r.out), `${r.order} order, ${r.threads} workers`).toBe(reference);
    expect(results(ok(EXE.debug, ["all"], { DIFFTC_EMU_ORDER: "reverse" }))).toBe(reference);
    expect(results(ok(EXE.ucontext, ["all"]))).toBe(reference);
    expect(results(ok(EXE.ucontext, ["all"], { DIFFTC_EMU_ORDER: "reverse", DIFFTC_EMU_THREADS: "2" }))).toBe(reference);
  });

  it("really reverses the order of threads and blocks under DIFFTC_EMU_ORDER=reverse", () => {
    if (!ready()) return;
    expect(ok(EXE.fibers, ["order"], { DIFFTC_EMU_THREADS: "1" })).toBe("order first-thread 0 first-block 0\n");
    expect(ok(EXE.fibers, ["order"], { DIFFTC_EMU_THREADS: "1", DIFFTC_EMU_ORDER: "reverse" })).toBe("order first-thread 63 first-block 3\n");
    expect(ok(EXE.ucontext, ["order"], { DIFFTC_EMU_THREADS: "1", DIFFTC_EMU_ORDER: "reverse" })).toBe("order first-thread 63 first-block 3\n");
  });

  it("aborts on a divergent __syncthreads, naming both call sites, in either order", () => {
    if (!ready()) return;
    for (const [exe, order] of [[EXE.fibers, "forward"], [EXE.fibers, "reverse"], [EXE.ucontext, "forward"]]) {
      const r = run(exe, ["divergent"], { DIFFTC_EMU_ORDER: order }, 10_000);
      expect(r.status).toBe(3);
      expect(r.stdout).not.toContain("no abort");
      expect(r.stderr).toMatch(/^difftc cuda-emu: divergent __syncthreads in kernel divergent_sites: thread \(\d+,0,0\) of block \(0,0,0\) waits at emu\.cu:\d+ while thread \(\d+,0,0\) waits at emu\.cu:\d+\n$/);
      expect(r.stderr).toContain(site("low"));
      expect(r.stderr).toContain(site("high"));
    }
    const first = run(EXE.fibers, ["divergent"], {}, 10_000).stderr;
    expect(first).toContain(`thread (3,0,0) of block (0,0,0) waits at ${site("high")} while thread (0,0,0) waits at ${site("low")}`);
  });

  it("aborts when a thread exits while the others wait at __syncthreads", () => {
    if (!ready()) return;
    for (const order of ["forward", "reverse"]) {
      const r = run(EXE.fibers, ["exited"], { DIFFTC_EMU_ORDER: order }, 10_000);
      expect(r.status).toBe(3);
      expect(r.stderr).toContain("divergent __syncthreads in kernel divergent_exit: thread (5,0,0) of block");
      expect(r.stderr).toContain(`exited while thread (${order === "forward" ? 0 : 63},0,0) waits at ${site("exit")}`);
    }
  });

  it("aborts on a deadlock (block and warp barriers waiting on each other) instead of hanging", () => {
    if (!ready()) return;
    for (const exe of [EXE.fibers, EXE.debug, EXE.ucontext]) {
      const r = run(exe, ["deadlock"], {}, 10_000);
      expect(r.status).toBe(3);
      expect(r.stderr).toContain("difftc cuda-emu: deadlock in kernel deadlock, block (0,0,0)");
      expect(r.stderr).toContain(`48 threads wait in __syncthreads at ${site("block")}`);
      expect(r.stderr).toContain(`16 threads wait in __syncwarp at ${site("warp")} (first: thread (16,0,0))`);
    }
  });

  it("refuses what it does not emulate: partial warp masks, dynamic shared memory, bad settings", () => {
    if (!ready()) return;
    const mask = run(EXE.fibers, ["mask"], {}, 10_000);
    expect(mask.status).toBe(3);
    expect(mask.stderr).toContain("unsupported: __shfl_down_sync with mask 0x0000ffff");
    const smem = run(EXE.fibers, ["smem"], {}, 10_000);
    expect(smem.status).toBe(3);
    expect(smem.stderr).toContain("kernel saxpy launched with 1024 bytes of dynamic shared memory");
    const threads = run(EXE.fibers, ["reduce"], { DIFFTC_EMU_THREADS: "0" }, 10_000);
    expect(threads.status).toBe(3);
    expect(threads.stderr).toContain("DIFFTC_EMU_THREADS must be a positive integer, got '0'");
    const order = run(EXE.fibers, ["reduce"], { DIFFTC_EMU_ORDER: "sideways" }, 10_000);
    expect(order.stderr).toContain("DIFFTC_EMU_ORDER must be 'forward' or 'reverse'");
  });

  it("under AddressSanitizer, runs clean and reports a kernel's write past the end of a cudaMalloc buffer", () => {
    if (!ready()) return;
    if (!EXE.asan) return console.warn(`\n*** g++ -fsanitize=address failed: the AddressSanitizer check did NOT run ***\n${String(asanError)}\n`);
    const env = { ASAN_OPTIONS: "detect_leaks=0" };
    expect(results(ok(EXE.asan, ["all"], { ...env, DIFFTC_EMU_ORDER: "reverse" })).split("\n")).toHaveLength(8);
    const r = run(EXE.asan, ["oob"], env);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("ERROR: AddressSanitizer: heap-buffer-overflow");
    expect(r.stderr).toMatch(/in saxpy\(float\*, float const\*, float, int\) .*emu\.cu:\d+/);
  });

  it("runs fast enough: a 256x256x256 tiled matmul and a million never-waiting threads (timings printed)", () => {
    if (!ready()) return;
    const matmul = ok(EXE.fibers, ["matmul256"]).trim();
    const saxpy = ok(EXE.fibers, ["saxpy"]).trim();
    const single = ok(EXE.fibers, ["matmul256"], { DIFFTC_EMU_THREADS: "1" }).trim();
    console.log(`cuda-emu timings (3 launches each, the first starts the workers' stacks):\n  ${matmul} (default workers)\n  ${single} (1 worker)\n  ${saxpy}`);
    expect(matmul).toMatch(/^matmul 256x256x256( ms [\d.]+){3} sum -?[\d.]+$/);
  });
});

describe("the same test sources under nvcc", () => {
  it("compile as CUDA for sm_80 without a warning (difftc_cuda.h picks cuda_runtime.h)", async () => {
    const nvcc = findTool("nvcc", "/usr/local/cuda/bin/nvcc");
    if (!nvcc) return missing("nvcc", "the CUDA compile check of the emulator's test programs");
    const src = mkdtempSync(join(tmpdir(), "difftc-emu-nvcc-"));
    try {
      writeFileSync(join(src, "emu.cu"), PROGRAM);
      writeFileSync(join(src, "emu2.cu"), SECOND);
      const exec = promisify(execFile);
      const compile = (file: string) => exec(nvcc, ["-c", "-arch=sm_80", "-Werror", "all-warnings", "-I", RUNTIME, "-o", "/dev/null", file], { cwd: src, timeout: 120_000 });
      const outputs = await Promise.all(["emu.cu", "emu2.cu"].map(compile));
      for (const { stderr } of outputs) expect(stderr).toBe("");
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  }, 150_000);
});
