// difftc_cuda_emu.h: a CPU emulation of the CUDA subset difftc emits, so the generated .cu
// source builds unchanged with g++ (-O2 -std=c++17 -pthread -x c++) and runs without a GPU.
// Include difftc_cuda.h, not this file: it picks cuda_runtime.h under nvcc.
//
// Execution model
// - A launch runs the whole grid before it returns (launches are synchronous).
// - Blocks are spread over worker threads: the launching thread plus one std::thread per
//   extra core (DIFFTC_EMU_THREADS=n overrides the count; 1 runs everything on the caller).
//   Workers take block indices from one atomic counter.
// - Each CUDA thread of a block is a cooperative fiber. A fiber that has started and not yet
//   returned owns a stack (64 KiB by default, DIFFTC_EMU_STACK_KB overrides, a guard page
//   below it); the stacks belong to the worker and are reused by every block and launch. On
//   x86-64 ELF the context switch is a few lines of assembly that save rbx, rbp, r12-r15, rsp,
//   MXCSR and the x87 control word; elsewhere (or with -DDIFFTC_EMU_UCONTEXT, or with CET
//   shadow stacks) it is ucontext, correct but some 30x slower per switch.
// - Within a block the fibers run round-robin: a fiber runs until it waits at a barrier or a
//   warp operation, or returns. When a thread returns and the next one has not started, the
//   next one runs on the same stack with no switch at all, so a kernel that never waits costs
//   one call per thread. DIFFTC_EMU_ORDER=reverse runs the threads of each block, and the
//   blocks, in reverse order, to shake out races.
// - A block runs to completion on its worker before that worker starts another block, and all
//   fibers of a block run on the same OS thread. That is what makes __shared__ variables as
//   `static thread_local` correct: the fibers of a block share them, concurrent blocks (on
//   other workers) do not. Their contents at block start are undefined, as on the GPU.
// - __syncthreads() waits until every thread of the block arrives at the same call site
//   (__FILE__:__LINE__). Threads waiting at different __syncthreads, or a thread that exits
//   while others wait (or before they arrive), abort the program with a message on stderr;
//   so does a deadlock (every live thread waiting with nothing to release it). Never a hang,
//   except for a thread that spins on memory forever (fibers are not preempted).
// - Warps are the threads of a block by linear index / 32. __syncwarp, the shuffles and the
//   votes are warp barriers over the whole warp; a mask that leaves out an existing lane is
//   unsupported and aborts. Shuffles exchange through a per-warp slot (each lane writes its
//   value, warp barrier, each lane reads its source lane; the slots are double-buffered so
//   that the barrier that would close the read phase is the next operation's barrier).
//   A lane that asks for a lane past the end of a partial warp gets its own value.
// - Aborts print "difftc cuda-emu: ..." on stderr and exit with status 3
//   (DIFFTC_EMU_FAIL_STATUS).
//
// - Built with -fsanitize=address, the switches are announced to AddressSanitizer and each
//   cudaMalloc is its own exact-size allocation: out-of-bounds accesses of kernels are reported.
//
// Not supported: dynamic shared memory (smem must be 0; `extern __shared__` does not compile),
// launches from device code, streams other than synchronous no-ops, partial warp masks,
// texture and surface objects, cooperative groups. cudaMalloc'd memory is filled with 0xff
// bytes (NaN for floats, -1 for integers) to expose reads of uninitialised memory;
// DIFFTC_EMU_POISON=0 turns that off.
#ifndef DIFFTC_CUDA_EMU_H
#define DIFFTC_CUDA_EMU_H

#ifdef __CUDACC__
#error "difftc_cuda_emu.h is the CPU emulation; include difftc_cuda.h, which uses cuda_runtime.h under nvcc"
#endif
#if !defined(__cplusplus) || __cplusplus < 201703L
#error "difftc_cuda_emu.h needs C++17 (g++ -std=c++17 -pthread -x c++)"
#endif

#include <math.h>

#include <atomic>
#include <cfenv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__ELF__) && !defined(DIFFTC_EMU_UCONTEXT) && !(defined(__CET__) && (__CET__ & 2))
#define DIFFTC_EMU_X86_FIBERS 1
#else
#define DIFFTC_EMU_X86_FIBERS 0
#include <ucontext.h>
#endif

// AddressSanitizer must be told about stack switches (else it reports false overflows).
#if defined(__SANITIZE_ADDRESS__)
#define DIFFTC_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIFFTC_EMU_ASAN 1
#endif
#endif
#ifdef DIFFTC_EMU_ASAN
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define DIFFTC_CUDA_EMU 1
#ifndef DIFFTC_EMU_FAIL_STATUS
#define DIFFTC_EMU_FAIL_STATUS 3
#endif

// ---------------------------------------------------------------------------------------------
// Qualifiers. (__noinline__ is left alone: libstdc++ spells __attribute__((__noinline__)).)
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

// ---------------------------------------------------------------------------------------------
// Built-in types and variables.
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define DIFFTC_EMU_VEC2(T, N, A)                   \
  struct __attribute__((aligned(A))) N##2 {       \
    T x, y;                                       \
  };                                              \
  inline N##2 make_##N##2(T x, T y) { return {x, y}; }
#define DIFFTC_EMU_VEC4(T, N, A)                             \
  struct __attribute__((aligned(A))) N##4 {                 \
    T x, y, z, w;                                           \
  };                                                        \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return {x, y, z, w}; }
DIFFTC_EMU_VEC2(float, float, 8)
DIFFTC_EMU_VEC4(float, float, 16)
DIFFTC_EMU_VEC2(int, int, 8)
DIFFTC_EMU_VEC4(int, int, 16)
DIFFTC_EMU_VEC2(unsigned int, uint, 8)
DIFFTC_EMU_VEC4(unsigned int, uint, 16)
DIFFTC_EMU_VEC2(double, double, 16)
#undef DIFFTC_EMU_VEC2
#undef DIFFTC_EMU_VEC4
struct float3 {
  float x, y, z;
};
struct int3 {
  int x, y, z;
};
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return {x, y, z}; }

// Per worker thread; the scheduler stores the running fiber's index in threadIdx at each switch.
inline thread_local uint3 threadIdx = {0, 0, 0};
inline thread_local uint3 blockIdx = {0, 0, 0};
inline thread_local dim3 blockDim(1, 1, 1);
inline thread_local dim3 gridDim(1, 1, 1);
static constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------
// Host API: error codes, memory, streams and events (all synchronous).
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  bool recorded;
};
typedef struct CUevent_st* cudaEvent_t;

namespace difftc_emu {

[[noreturn]] inline void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));
inline void fail(const char* format, ...) {
  char text[8192];
  int k = std::snprintf(text, sizeof text, "difftc cuda-emu: ");
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(text + k, sizeof text - k - 2, format, ap);
  va_end(ap);
  size_t n = std::strlen(text);
  text[n++] = '\n';
  std::fflush(stdout);
  std::fwrite(text, 1, n, stderr);
  std::fflush(stderr);
  std::_Exit(DIFFTC_EMU_FAIL_STATUS);
}

inline thread_local cudaError_t last_error = cudaSuccess;
inline cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

struct Allocations {
  std::mutex mutex;
  std::unordered_map<void*, size_t> bytes;
};
inline Allocations& allocations() {
  static Allocations* a = new Allocations;  // never destroyed: usable from static destructors
  return *a;
}

inline bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "no") == 0);
}

}  // namespace difftc_emu

inline cudaError_t cudaMalloc(void** ptr, size_t size) {
  using namespace difftc_emu;
  if (!ptr) return record(cudaErrorInvalidValue);
  // Exactly `size` bytes (256-byte aligned, as cudaMalloc's), so that AddressSanitizer sees
  // a kernel that reads or writes past the end of a buffer.
  size_t bytes = size == 0 ? 1 : size;
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes) != 0) p = nullptr;
  if (!p) {
    *ptr = nullptr;
    return record(cudaErrorMemoryAllocation);
  }
  if (env_flag("DIFFTC_EMU_POISON", true)) std::memset(p, 0xff, bytes);
  {
    std::lock_guard<std::mutex> lock(allocations().mutex);
    allocations().bytes[p] = size;
  }
  *ptr = p;
  return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMalloc(T** ptr, size_t size) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), size);
}
inline cudaError_t cudaMallocManaged(void** ptr, size_t size, unsigned int = 1) { return cudaMalloc(ptr, size); }
template <class T>
inline cudaError_t cudaMallocManaged(T** ptr, size_t size, unsigned int = 1) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), size);
}
inline cudaError_t cudaFree(void* ptr) {
  using namespace difftc_emu;
  if (!ptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(allocations().mutex);
    if (allocations().bytes.erase(ptr) == 0) return record(cudaErrorInvalidDevicePointer);
  }
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (!ptr) return difftc_emu::record(cudaErrorInvalidValue);
  *ptr = std::malloc(size ? size : 1);
  return *ptr ? cudaSuccess : difftc_emu::record(cudaErrorMemoryAllocation);
}
template <class T>
inline cudaError_t cudaMallocHost(T** ptr, size_t size) {
  return cudaMallocHost(reinterpret_cast<void**>(ptr), size);
}
inline cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (static_cast<unsigned>(kind) > 4u) return difftc_emu::record(cudaErrorInvalidMemcpyDirection);
  if (count == 0) return cudaSuccess;
  if (!dst || !src) return difftc_emu::record(cudaErrorInvalidValue);
  std::memmove(dst, src, count);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, count, kind);
}
inline cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (!ptr) return difftc_emu::record(cudaErrorInvalidValue);
  std::memset(ptr, value, count);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t = nullptr) { return cudaMemset(ptr, value, count); }
template <class T>
inline cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t count, size_t offset = 0, cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  if (offset + count > sizeof(T)) return difftc_emu::record(cudaErrorInvalidValue);
  return cudaMemcpy(reinterpret_cast<char*>(&symbol) + offset, src, count, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t count, size_t offset = 0, cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
  if (offset + count > sizeof(T)) return difftc_emu::record(cudaErrorInvalidValue);
  return cudaMemcpy(dst, reinterpret_cast<const char*>(&symbol) + offset, count, kind);
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaDeviceReset() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : difftc_emu::record(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDevice(int* device) {
  if (!device) return difftc_emu::record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return difftc_emu::record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() {
  cudaError_t e = difftc_emu::last_error;
  difftc_emu::last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return difftc_emu::last_error; }
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
  }
  return "unknown error";
}
inline cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (!stream) return difftc_emu::record(cudaErrorInvalidValue);
  *stream = nullptr;  // every stream is the synchronous default stream
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (!event) return difftc_emu::record(cudaErrorInvalidValue);
  *event = new CUevent_st{std::chrono::steady_clock::now(), false};
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t = nullptr) {
  if (!event) return difftc_emu::record(cudaErrorInvalidResourceHandle);
  event->at = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t event) { return event ? cudaSuccess : difftc_emu::record(cudaErrorInvalidResourceHandle); }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end || !start->recorded || !end->recorded) return difftc_emu::record(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------
// Math and bit intrinsics, as the GPU computes them. fmaxf/fminf (the other operand when one is
// NaN), isnan, INFINITY and NAN are the C library's, which agree with CUDA's.
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline long long __double_as_longlong(double d) {
  long long i;
  std::memcpy(&i, &d, 8);
  return i;
}
inline double __longlong_as_double(long long i) {
  double d;
  std::memcpy(&d, &i, 8);
  return d;
}
// glibc's math.h declares __expf, __logf, __sinf... (its internal names) and newer ones declare
// C23's rsqrtf: these are macros over difftc_emu's functions rather than redeclarations.
// The fast intrinsics are base-2 hardware approximations: ex2(x * log2 e), lg2(x) * ln 2.
namespace difftc_emu {
inline float rsqrtf_(float x) { return 1.0f / ::sqrtf(x); }
inline double rsqrt_(double x) { return 1.0 / ::sqrt(x); }
inline float expf_(float x) { return ::exp2f(x * 1.44269504088896340736f); }
inline float exp10f_(float x) { return ::exp2f(x * 3.32192809488736234787f); }
inline float logf_(float x) { return ::log2f(x) * 0.693147180559945309417f; }
inline float log2f_(float x) { return ::log2f(x); }
inline float log10f_(float x) { return ::log2f(x) * 0.301029995663981195214f; }
inline float powf_(float x, float y) { return ::exp2f(y * ::log2f(x)); }
inline float sinf_(float x) { return ::sinf(x); }
inline float cosf_(float x) { return ::cosf(x); }
inline float tanf_(float x) { return ::tanf(x); }
}  // namespace difftc_emu
#define rsqrtf(x) ::difftc_emu::rsqrtf_(x)
#define rsqrt(x) ::difftc_emu::rsqrt_(x)
#define __expf(x) ::difftc_emu::expf_(x)
#define __exp10f(x) ::difftc_emu::exp10f_(x)
#define __logf(x) ::difftc_emu::logf_(x)
#define __log2f(x) ::difftc_emu::log2f_(x)
#define __log10f(x) ::difftc_emu::log10f_(x)
#define __powf(x, y) ::difftc_emu::powf_(x, y)
#define __sinf(x) ::difftc_emu::sinf_(x)
#define __cosf(x) ::difftc_emu::cosf_(x)
#define __tanf(x) ::difftc_emu::tanf_(x)
// x * (1/y) with the reciprocal flushed to zero: 0 for 2^126 < |y| < 2^128 (NaN if x is infinite).
inline float __fdividef(float x, float y) {
  float r = 1.0f / y;
  if (::fabsf(r) < 1.17549435e-38f) r = ::copysignf(0.0f, r);
  return x * r;
}
inline float fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return ::sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return ::fmaf(a, b, c); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; }  // NaN -> 0
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
// dp4a (sm_61+): the four signed (or unsigned) byte products of a and b summed into c, wrapping as 32-bit ints do.
inline int __dp4a(int a, int b, int c) {
  unsigned int sum = static_cast<unsigned int>(c);
  for (int k = 0; k < 32; k += 8) sum += static_cast<unsigned int>(static_cast<int>(static_cast<signed char>(a >> k)) * static_cast<int>(static_cast<signed char>(b >> k)));
  return static_cast<int>(sum);
}
inline unsigned int __dp4a(unsigned int a, unsigned int b, unsigned int c) {
  for (int k = 0; k < 32; k += 8) c += ((a >> k) & 0xffu) * ((b >> k) & 0xffu);
  return c;
}
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned int __umulhi(unsigned int a, unsigned int b) { return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return ::fminf(a, b); }
inline float max(float a, float b) { return ::fmaxf(a, b); }
inline double min(double a, double b) { return ::fmin(a, b); }
inline double max(double a, double b) { return ::fmax(a, b); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap() { difftc_emu::fail("__trap() called in a kernel"); }

// ---------------------------------------------------------------------------------------------
// Atomics: blocks run concurrently on the workers, so these are real (relaxed) atomics.
namespace difftc_emu {
typedef unsigned int __attribute__((may_alias)) u32_alias;
typedef unsigned long long __attribute__((may_alias)) u64_alias;
template <class F, class U, class Op>
inline F atomic_bits(F* address, Op op) {
  U* p = reinterpret_cast<U*>(address);
  U old = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    F before, after;
    std::memcpy(&before, &old, sizeof before);
    after = op(before);
    U bits;
    std::memcpy(&bits, &after, sizeof bits);
    if (__atomic_compare_exchange_n(p, &old, bits, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return before;
  }
}
}  // namespace difftc_emu

#define DIFFTC_EMU_ATOMIC_INT(T)                                                                                  \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }                            \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }                            \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }                            \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                              \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }                            \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }                          \
  inline T atomicCAS(T* p, T expected, T v) {                                                                     \
    __atomic_compare_exchange_n(p, &expected, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                      \
    return expected;                                                                                              \
  }                                                                                                               \
  inline T atomicMax(T* p, T v) {                                                                                 \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                                 \
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {       \
    }                                                                                                             \
    return old;                                                                                                   \
  }                                                                                                               \
  inline T atomicMin(T* p, T v) {                                                                                 \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                                 \
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {       \
    }                                                                                                             \
    return old;                                                                                                   \
  }
DIFFTC_EMU_ATOMIC_INT(int)
DIFFTC_EMU_ATOMIC_INT(unsigned int)
DIFFTC_EMU_ATOMIC_INT(unsigned long long)
DIFFTC_EMU_ATOMIC_INT(long long)
#undef DIFFTC_EMU_ATOMIC_INT
inline float atomicAdd(float* p, float v) {
  return difftc_emu::atomic_bits<float, difftc_emu::u32_alias>(p, [v](float x) { return x + v; });
}
inline double atomicAdd(double* p, double v) {
  return difftc_emu::atomic_bits<double, difftc_emu::u64_alias>(p, [v](double x) { return x + v; });
}
inline float atomicExch(float* p, float v) {
  return difftc_emu::atomic_bits<float, difftc_emu::u32_alias>(p, [v](float) { return v; });
}
// atomicInc/atomicDec wrap as CUDA's: ((old >= v) ? 0 : old + 1), ((old == 0 || old > v) ? v : old - 1).
inline unsigned int atomicInc(unsigned int* p, unsigned int v) {
  return difftc_emu::atomic_bits<unsigned int, difftc_emu::u32_alias>(p, [v](unsigned int x) { return x >= v ? 0u : x + 1; });
}
inline unsigned int atomicDec(unsigned int* p, unsigned int v) {
  return difftc_emu::atomic_bits<unsigned int, difftc_emu::u32_alias>(p, [v](unsigned int x) { return (x == 0 || x > v) ? v : x - 1; });
}

// ---------------------------------------------------------------------------------------------
// Fibers and the block scheduler.
namespace difftc_emu {

#if DIFFTC_EMU_X86_FIBERS
// switch(save, to): pushes the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores rsp in *save, loads `to` as rsp and pops the same frame from there.
// A comdat, hidden, weak symbol: every translation unit that includes this header emits it,
// the linker keeps one (and hidden keeps each shared object on its own copy).
extern "C" void difftc_emu_switch(void** save, void* to);
__asm__(
    ".ifndef difftc_emu_switch\n"  // once per assembly file (with -flto, all units are one)
    ".pushsection .text.difftc_emu_switch,\"axG\",@progbits,difftc_emu_switch,comdat\n"
    ".weak difftc_emu_switch\n"
    ".hidden difftc_emu_switch\n"
    ".type difftc_emu_switch,@function\n"
    ".p2align 4\n"
    "difftc_emu_switch:\n"
#if defined(__CET__)
    "  endbr64\n"
#endif
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $16, %rsp\n"
    "  stmxcsr 8(%rsp)\n"
    "  fnstcw (%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr 8(%rsp)\n"
    "  fldcw (%rsp)\n"
    "  addq $16, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size difftc_emu_switch, .-difftc_emu_switch\n"
    ".popsection\n"
    ".endif\n");
struct Context {
  void* sp = nullptr;
  const void* bottom = nullptr;  // the stack, for AddressSanitizer
  size_t size = 0;
};
inline void raw_switch(Context* save, Context* to) { difftc_emu_switch(&save->sp, to->sp); }
#else
struct Context {
  ucontext_t uc;
  const void* bottom = nullptr;
  size_t size = 0;
};
inline void raw_switch(Context* save, Context* to) {
  if (swapcontext(&save->uc, &to->uc) != 0) fail("swapcontext failed");
}
#endif

#ifdef DIFFTC_EMU_ASAN
inline void switch_context(Context* save, Context* to) {
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, to->bottom, to->size);
  raw_switch(save, to);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
}
inline void entered_new_stack() { __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr); }
inline void os_thread_stack(Context* c) {
  pthread_attr_t attr;
  void* bottom = nullptr;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &bottom, &size);
    pthread_attr_destroy(&attr);
  }
  c->bottom = bottom;
  c->size = size;
}
#else
inline void switch_context(Context* save, Context* to) { raw_switch(save, to); }
inline void entered_new_stack() {}
inline void os_thread_stack(Context*) {}
#endif

enum : unsigned char { FRESH, READY, BLOCKED, DONE };

// A carrier is a stack with a context: it runs the bodies of fibers one after another (a fiber
// keeps its carrier from its start to its return, its frames live there). When a fiber returns
// and the next one in the round-robin order has not started yet, the same carrier runs it
// without any switch: a kernel whose threads never wait costs one call per thread.
struct Carrier {
  Context context;
  char* top = nullptr;
  bool started = false;  // holds a context; reset at each launch (a launch may run on other OS threads)
};

struct Fiber {
  Carrier* carrier = nullptr;
  uint3 tid = {0, 0, 0};
  unsigned linear = 0;
  unsigned char state = FRESH;
  const char* op = nullptr;  // where a BLOCKED fiber waits
  const char* file = nullptr;
  int line = 0;
};

struct Warp {
  unsigned lanes = 0, arrived = 0, gen = 0, first = 0;
  unsigned exited = 0, first_exited = 0, exited_mask = 0;
  bool data = false;
  const char* op = nullptr;
  const char* file = nullptr;
  int line = 0;
  unsigned long long slot[2][32];
};

struct Barrier {
  unsigned arrived = 0, first = 0, exited = 0, first_exited = 0;
  const char* file = nullptr;
  int line = 0;
  int acc = 0, result = 0;
};

struct Worker {
  std::vector<Fiber> fibers;
  std::vector<Carrier*> carriers, free_carriers;
  Warp warps[32];
  Barrier barrier;
  unsigned n = 0, live = 0, pos = 0;
  bool reverse = false;
  Fiber* cur = nullptr;
  Context scheduler;
  const char* kernel = "";
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
};

inline thread_local Worker* tl_worker = nullptr;

inline size_t stack_bytes() {
  static const size_t bytes = [] {
    long kib = 64;
    const char* v = std::getenv("DIFFTC_EMU_STACK_KB");
    if (v && *v) {
      char* end = nullptr;
      long k = std::strtol(v, &end, 10);
      if (*end || k < 16 || k > 1048576) fail("DIFFTC_EMU_STACK_KB must be an integer from 16 to 1048576, got '%s'", v);
      kib = k;
    }
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (static_cast<size_t>(kib) * 1024 + page - 1) / page * page;
  }();
  return bytes;
}

constexpr size_t STACK_COLORS = 128;

[[noreturn]] inline void carrier_main();

// A carrier for a fiber about to start: a parked one, or a new one on a new stack.
inline Carrier* take_carrier(Worker* w) {
  Carrier* c;
  if (!w->free_carriers.empty()) {
    c = w->free_carriers.back();
    w->free_carriers.pop_back();
  } else {
    // Below the top of each stack, a different multiple of 64 bytes (up to STACK_COLORS * 64):
    // the hot frames of the fibers of a block then spread over the cache sets instead of all
    // mapping to the same few (the stacks are a power-of-two-ish stride apart).
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), bytes = stack_bytes() + STACK_COLORS * 64;
    void* p = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("cannot map a %zu-byte fiber stack", bytes);
    mprotect(p, page, PROT_NONE);  // guard page: an overflow faults instead of corrupting memory
    c = new Carrier;
    c->top = static_cast<char*>(p) + page + stack_bytes() + (w->carriers.size() * 37 % STACK_COLORS) * 64;
    w->carriers.push_back(c);
  }
  if (!c->started) {
    c->context.size = stack_bytes();
    c->context.bottom = c->top - stack_bytes();
#ifdef DIFFTC_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(c->top - stack_bytes(), stack_bytes());  // frames abandoned by an earlier launch
#endif
#if DIFFTC_EMU_X86_FIBERS
    // The frame difftc_emu_switch pops: x87 control word and MXCSR, r15..r12, rbx, rbp, and the
    // return address, carrier_main, entered with rsp = 8 mod 16 as after a call.
    void** sp = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(c->top) & ~static_cast<uintptr_t>(15));
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(&carrier_main);
    for (int i = 0; i < 6; ++i) *--sp = nullptr;
    sp -= 2;
    unsigned int mxcsr;
    unsigned short fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    std::memcpy(reinterpret_cast<char*>(sp) + 8, &mxcsr, 4);
    std::memcpy(sp, &fpucw, 2);
    c->context.sp = sp;
#else
    if (getcontext(&c->context.uc) != 0) fail("getcontext failed");
    c->context.uc.uc_stack.ss_sp = c->top - stack_bytes();
    c->context.uc.uc_stack.ss_size = stack_bytes();
    c->context.uc.uc_link = nullptr;
    makecontext(&c->context.uc, reinterpret_cast<void (*)()>(&carrier_main), 0);
#endif
    c->started = true;
  }
  return c;
}

inline const char* thread_name(const Worker* w, unsigned linear, char* buf, size_t size) {
  const uint3 t = w->fibers[linear].tid;
  std::snprintf(buf, size, "(%u,%u,%u)", t.x, t.y, t.z);
  return buf;
}
inline const char* block_name(char* buf, size_t size) {
  std::snprintf(buf, size, "(%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z);
  return buf;
}

[[noreturn]] inline void deadlock(Worker* w) {
  struct Group {
    const char* op;
    const char* file;
    int line;
    unsigned first, count;
  };
  std::vector<Group> groups;
  for (unsigned i = 0; i < w->n; ++i) {
    const Fiber& f = w->fibers[i];
    if (f.state != BLOCKED) continue;
    bool found = false;
    for (Group& g : groups)
      if (g.line == f.line && std::strcmp(g.op, f.op) == 0 && std::strcmp(g.file, f.file) == 0) {
        g.count++;
        found = true;
        break;
      }
    if (!found) groups.push_back({f.op, f.file, f.line, i, 1});
  }
  char text[4096], t[48], b[48];
  size_t k = 0;
  for (size_t i = 0; i < groups.size() && i < 8 && k < sizeof text - 256; ++i)
    k += std::snprintf(text + k, sizeof text - k, "%s%u thread%s wait%s in %s at %s:%d (first: thread %s)", i ? "; " : "", groups[i].count, groups[i].count == 1 ? "" : "s", groups[i].count == 1 ? "s" : "", groups[i].op,
                       groups[i].file, groups[i].line, thread_name(w, groups[i].first, t, sizeof t));
  fail("deadlock in kernel %s, block %s: every live thread waits and none can release the others: %s", w->kernel, block_name(b, sizeof b), text);
}

// The next fiber to run after the one at w->pos, round-robin; a deadlock if there is none.
inline Fiber* pick(Worker* w) {
  const unsigned n = w->n;
  unsigned p = w->pos;
  for (unsigned k = 0; k < n; ++k) {
    if (++p == n) p = 0;
    Fiber* f = &w->fibers[w->reverse ? n - 1 - p : p];
    if (f->state == READY || f->state == FRESH) {
      w->pos = p;
      return f;
    }
  }
  deadlock(w);
}

// Makes f the running fiber; returns the context to switch to (a fresh fiber gets a carrier).
inline Context* enter(Worker* w, Fiber* f) {
  if (f->state == FRESH) {
    f->carrier = take_carrier(w);
    f->state = READY;
  }
  w->cur = f;
  threadIdx = f->tid;
  return &f->carrier->context;
}

// The running fiber waits: switch to the next runnable fiber of the block.
inline void block_current(Worker* w, const char* op, const char* file, int line) {
  Fiber* self = w->cur;
  self->state = BLOCKED;
  self->op = op;
  self->file = file;
  self->line = line;
  Fiber* next = pick(w);
  Context* to = enter(w, next);
  switch_context(&self->carrier->context, to);
}

inline bool same_site(const char* f1, int l1, const char* f2, int l2) { return l1 == l2 && (f1 == f2 || std::strcmp(f1, f2) == 0); }

inline Worker* in_kernel(const char* op, const char* file, int line) {
  Worker* w = tl_worker;
  if (!w || !w->cur) fail("%s called outside a kernel, at %s:%d", op, file, line);
  return w;
}

// __syncthreads and its counting variants (mode 1 count, 2 and, 3 or).
inline int block_barrier(const char* file, int line, const char* op, int mode, int predicate) {
  Worker* w = in_kernel(op, file, line);
  Barrier& b = w->barrier;
  Fiber* f = w->cur;
  char t1[48], t2[48], bn[48];
  if (b.exited)
    fail("divergent %s in kernel %s: thread %s of block %s waits at %s:%d while thread %s has exited (every thread of the block must reach the same barrier)", op, w->kernel, thread_name(w, f->linear, t1, sizeof t1),
         block_name(bn, sizeof bn), file, line, thread_name(w, b.first_exited, t2, sizeof t2));
  if (b.arrived == 0) {
    b.file = file;
    b.line = line;
    b.first = f->linear;
    b.acc = mode == 2 ? 1 : 0;
  } else if (!same_site(b.file, b.line, file, line)) {
    fail("divergent __syncthreads in kernel %s: thread %s of block %s waits at %s:%d while thread %s waits at %s:%d", w->kernel, thread_name(w, f->linear, t1, sizeof t1), block_name(bn, sizeof bn), file, line,
         thread_name(w, b.first, t2, sizeof t2), b.file, b.line);
  }
  if (mode == 1) b.acc += predicate != 0;
  if (mode == 2) b.acc &= predicate != 0;
  if (mode == 3) b.acc |= predicate != 0;
  if (++b.arrived == w->n) {
    b.arrived = 0;
    b.result = b.acc;
    for (unsigned i = 0; i < w->n; ++i) w->fibers[i].state = READY;
  } else {
    block_current(w, op, file, line);
  }
  return b.result;
}

// A warp barrier: stores `value` in this lane's slot, waits for every lane of the warp and
// returns the slot row, which stays valid until the warp's next operation but one.
inline const unsigned long long* warp_exchange(const char* op, bool data, unsigned mask, const char* file, int line, unsigned long long value, unsigned* lane_out, unsigned* lanes_out) {
  Worker* w = in_kernel(op, file, line);
  Fiber* f = w->cur;
  Warp& W = w->warps[f->linear / 32];
  const unsigned lane = f->linear % 32;
  const unsigned full = W.lanes == 32 ? 0xffffffffu : (1u << W.lanes) - 1;
  char t1[48], t2[48], bn[48];
  if ((mask & full) != full)
    fail("unsupported: %s with mask 0x%08x at %s:%d in kernel %s: the CPU emulation needs every lane of the warp in the mask (0x%08x)", op, mask, file, line, w->kernel, full);
  if (W.exited)
    fail("divergent warp in kernel %s: thread %s of block %s calls %s at %s:%d while thread %s of its warp has exited", w->kernel, thread_name(w, f->linear, t1, sizeof t1), block_name(bn, sizeof bn), op, file, line,
         thread_name(w, W.first_exited, t2, sizeof t2));
  if (W.arrived == 0) {
    W.op = op;
    W.file = file;
    W.line = line;
    W.first = f->linear;
    W.data = data;
  } else if (std::strcmp(W.op, op) != 0 || ((data || W.data) && !same_site(W.file, W.line, file, line))) {
    fail("divergent warp in kernel %s: thread %s of block %s calls %s at %s:%d while thread %s of its warp waits in %s at %s:%d", w->kernel, thread_name(w, f->linear, t1, sizeof t1), block_name(bn, sizeof bn), op, file,
         line, thread_name(w, W.first, t2, sizeof t2), W.op, W.file, W.line);
  }
  unsigned long long* row = W.slot[W.gen & 1];
  row[lane] = value;
  if (++W.arrived == W.lanes) {
    W.arrived = 0;
    W.gen++;
    Fiber* lanes = &w->fibers[f->linear - lane];
    for (unsigned i = 0; i < W.lanes; ++i) lanes[i].state = READY;
  } else {
    block_current(w, op, file, line);
  }
  *lane_out = lane;
  *lanes_out = W.lanes;
  return row;
}

// A returned thread may not leave others waiting for it.
inline void retire(Worker* w, Fiber* f) {
  f->state = DONE;
  w->live--;
  Barrier& b = w->barrier;
  Warp& W = w->warps[f->linear / 32];
  char t1[48], t2[48], bn[48];
  if (b.arrived)
    fail("divergent __syncthreads in kernel %s: thread %s of block %s exited while thread %s waits at %s:%d", w->kernel, thread_name(w, f->linear, t1, sizeof t1), block_name(bn, sizeof bn),
         thread_name(w, b.first, t2, sizeof t2), b.file, b.line);
  if (W.arrived)
    fail("divergent warp in kernel %s: thread %s of block %s exited while thread %s of its warp waits in %s at %s:%d", w->kernel, thread_name(w, f->linear, t1, sizeof t1), block_name(bn, sizeof bn),
         thread_name(w, W.first, t2, sizeof t2), W.op, W.file, W.line);
  if (b.exited++ == 0) b.first_exited = f->linear;
  if (W.exited++ == 0) W.first_exited = f->linear;
  W.exited_mask |= 1u << (f->linear % 32);
}

// The loop of a carrier: run the current fiber's thread; when it returns, run the next fiber
// right here if it has not started, else park this carrier and switch to the next fiber's (or,
// when the block is done, to the scheduler). A parked carrier resumes with a fresh fiber.
[[noreturn]] inline void carrier_main() {
  entered_new_stack();
  for (;;) {
    Worker* w = tl_worker;
    w->body(w->arg);
    Fiber* f = w->cur;
    Carrier* self = f->carrier;
    retire(w, f);
    f->carrier = nullptr;
    Context* to = &w->scheduler;
    if (w->live) {
      Fiber* next = pick(w);
      if (next->state == FRESH) {
        next->carrier = self;
        next->state = READY;
        w->cur = next;
        threadIdx = next->tid;
        continue;
      }
      to = enter(w, next);
    }
    w->free_carriers.push_back(self);
    switch_context(&self->context, to);
  }
}

inline void run_block(Worker* w) {
  const unsigned n = w->n;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = w->fibers[i];
    f.tid = uint3{i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
    f.linear = i;
    f.state = FRESH;
    f.carrier = nullptr;
  }
  w->barrier = Barrier();
  for (unsigned i = 0; i * 32 < n; ++i) {
    Warp& W = w->warps[i];
    W.lanes = n - i * 32 < 32 ? n - i * 32 : 32;
    W.arrived = W.gen = W.exited = W.exited_mask = 0;
  }
  w->live = n;
  w->pos = n - 1;
  Context* to = enter(w, pick(w));
  switch_context(&w->scheduler, to);  // back when every thread of the block has returned
  w->cur = nullptr;
}

inline std::mutex& pool_mutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
inline std::vector<Worker*>& pool() {
  static std::vector<Worker*>* p = new std::vector<Worker*>;
  return *p;
}

inline unsigned worker_count() {
  const char* v = std::getenv("DIFFTC_EMU_THREADS");
  if (v && *v) {
    char* end = nullptr;
    long k = std::strtol(v, &end, 10);
    if (*end || k < 1 || k > 4096) fail("DIFFTC_EMU_THREADS must be a positive integer, got '%s'", v);
    return static_cast<unsigned>(k);
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? h : 1;
}

inline bool reverse_order() {
  const char* v = std::getenv("DIFFTC_EMU_ORDER");
  if (!v || !*v || std::strcmp(v, "forward") == 0) return false;
  if (std::strcmp(v, "reverse") == 0) return true;
  fail("DIFFTC_EMU_ORDER must be 'forward' or 'reverse', got '%s'", v);
}

inline void run_grid(const char* kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void*), void* arg) {
  if (tl_worker) fail("kernel %s launched from inside kernel %s: device-side launches are not supported", kernel, tl_worker->kernel);
  if (smem != 0) fail("kernel %s launched with %zu bytes of dynamic shared memory: the CPU emulation supports only 0", kernel, smem);
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535) {
    record(cudaErrorInvalidConfiguration);
    return;
  }
  const size_t blocks = static_cast<size_t>(grid.x) * grid.y * grid.z;
  const bool reverse = reverse_order();
  unsigned workers = worker_count();
  if (workers > blocks) workers = static_cast<unsigned>(blocks);
  std::atomic<size_t> next{0};
  std::fenv_t env;
  std::fegetenv(&env);
  auto work = [&](bool spawned) {
    if (spawned) std::fesetenv(&env);
    Worker* w;
    {
      std::lock_guard<std::mutex> lock(pool_mutex());
      if (pool().empty()) {
        w = new Worker;
      } else {
        w = pool().back();
        pool().pop_back();
      }
    }
    if (w->fibers.size() < threads) w->fibers.resize(threads);
    // Carriers parked by an earlier launch hold contexts of another OS thread: start afresh.
    w->free_carriers.assign(w->carriers.begin(), w->carriers.end());
    for (Carrier* c : w->carriers) c->started = false;
    w->n = static_cast<unsigned>(threads);
    w->reverse = reverse;
    w->kernel = kernel;
    w->body = body;
    w->arg = arg;
    const uint3 saved_tid = threadIdx, saved_bid = blockIdx;
    const dim3 saved_bdim = blockDim, saved_gdim = gridDim;
    tl_worker = w;
    os_thread_stack(&w->scheduler);
    gridDim = grid;
    blockDim = block;
    for (;;) {
      const size_t k = next.fetch_add(1, std::memory_order_relaxed);
      if (k >= blocks) break;
      const size_t b = reverse ? blocks - 1 - k : k;
      blockIdx = uint3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y), static_cast<unsigned>(b / (static_cast<size_t>(grid.x) * grid.y))};
      run_block(w);
    }
    tl_worker = nullptr;
    threadIdx = saved_tid;
    blockIdx = saved_bid;
    blockDim = saved_bdim;
    gridDim = saved_gdim;
    std::lock_guard<std::mutex> lock(pool_mutex());
    pool().push_back(w);
  };
  std::vector<std::thread> threads_;
  for (unsigned i = 1; i < workers; ++i) {
    try {
      threads_.emplace_back(work, true);
    } catch (const std::system_error&) {
      break;  // no more threads: the workers started share the blocks
    }
  }
  work(false);
  for (std::thread& t : threads_) t.join();
}

template <class Bound>
inline void invoke(void* p) {
  Bound* b = static_cast<Bound*>(p);
  std::apply(b->kernel, b->args);
}

// The arguments are copied once, as CUDA copies them into the launch's parameter buffer; each
// thread calls the kernel with its own copy.
template <class K, class... A>
inline void launch(const char* name, K kernel, dim3 grid, dim3 block, size_t smem, A&&... args) {
  struct Bound {
    K kernel;
    std::tuple<std::decay_t<A>...> args;
  } bound{kernel, std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)};
  run_grid(name, grid, block, smem, &invoke<Bound>, &bound);
}

// The call site of a barrier or warp operation: the macros below expand to Site(__FILE__,
// __LINE__).op, so that `__syncthreads()` and `__shfl_down_sync(m, v, 1)` keep their CUDA syntax.
struct Site {
  const char* file;
  int line;
  Site(const char* f, int l) : file(f), line(l) {}

  void syncthreads() const { block_barrier(file, line, "__syncthreads", 0, 0); }
  int syncthreads_count(int predicate) const { return block_barrier(file, line, "__syncthreads_count", 1, predicate); }
  int syncthreads_and(int predicate) const { return block_barrier(file, line, "__syncthreads_and", 2, predicate); }
  int syncthreads_or(int predicate) const { return block_barrier(file, line, "__syncthreads_or", 3, predicate); }
  void syncwarp(unsigned mask = 0xffffffffu) const {
    unsigned lane, lanes;
    warp_exchange("__syncwarp", false, mask, file, line, 0, &lane, &lanes);
  }

  // mode 0: lane srcLane of the segment; 1: lane - delta; 2: lane + delta; 3: lane ^ laneMask.
  template <class T>
  T shuffle(const char* op, int mode, unsigned mask, T var, int arg, int width) const {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffles move values of at most 8 bytes");
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0) fail("%s at %s:%d: width %d is not a power of 2 from 1 to 32", op, file, line, width);
    unsigned long long bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    unsigned lane, lanes;
    const unsigned long long* row = warp_exchange(op, true, mask, file, line, bits, &lane, &lanes);
    const int l = static_cast<int>(lane), base = l & ~(width - 1);
    int src = l;
    switch (mode) {
      case 0: src = base + (arg & (width - 1)); break;
      case 1: src = l - base - arg >= 0 ? l - arg : l; break;
      case 2: src = l - base + arg < width ? l + arg : l; break;
      default: src = l ^ arg; if (src >= base + width || src < 0 || src >= 32) src = l; break;
    }
    if (src >= static_cast<int>(lanes)) src = l;  // past the end of a partial warp
    T out;
    std::memcpy(&out, &row[src], sizeof(T));
    return out;
  }
  template <class T>
  T shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) const {
    return shuffle("__shfl_sync", 0, mask, var, srcLane, width);
  }
  template <class T>
  T shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) const {
    return shuffle("__shfl_up_sync", 1, mask, var, static_cast<int>(delta), width);
  }
  template <class T>
  T shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) const {
    return shuffle("__shfl_down_sync", 2, mask, var, static_cast<int>(delta), width);
  }
  template <class T>
  T shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) const {
    return shuffle("__shfl_xor_sync", 3, mask, var, laneMask, width);
  }
  unsigned ballot(const char* op, unsigned mask, int predicate) const {
    unsigned lane, lanes;
    const unsigned long long* row = warp_exchange(op, true, mask, file, line, predicate != 0, &lane, &lanes);
    unsigned bits = 0;
    for (unsigned i = 0; i < lanes; ++i) bits |= static_cast<unsigned>(row[i] != 0) << i;
    return bits & mask;
  }
  unsigned ballot_sync(unsigned mask, int predicate) const { return ballot("__ballot_sync", mask, predicate); }
  int any_sync(unsigned mask, int predicate) const { return ballot("__any_sync", mask, predicate) != 0; }
  int all_sync(unsigned mask, int predicate) const { return ballot("__all_sync", mask, predicate) == (ballot_full(mask)); }
  unsigned ballot_full(unsigned mask) const {
    const Worker* w = tl_worker;
    const unsigned lanes = w->warps[w->cur->linear / 32].lanes;
    return (lanes == 32 ? 0xffffffffu : (1u << lanes) - 1) & mask;
  }
};

}  // namespace difftc_emu

inline unsigned __activemask() {
  const difftc_emu::Worker* w = difftc_emu::tl_worker;
  if (!w || !w->cur) difftc_emu::fail("__activemask called outside a kernel");
  const difftc_emu::Warp& W = w->warps[w->cur->linear / 32];
  return (W.lanes == 32 ? 0xffffffffu : (1u << W.lanes) - 1) & ~W.exited_mask;
}
inline unsigned __lanemask_lt() {
  const difftc_emu::Worker* w = difftc_emu::tl_worker;
  if (!w || !w->cur) difftc_emu::fail("__lanemask_lt called outside a kernel");
  return (1u << (w->cur->linear % 32)) - 1;
}

#define __syncthreads ::difftc_emu::Site(__FILE__, __LINE__).syncthreads
#define __syncthreads_count ::difftc_emu::Site(__FILE__, __LINE__).syncthreads_count
#define __syncthreads_and ::difftc_emu::Site(__FILE__, __LINE__).syncthreads_and
#define __syncthreads_or ::difftc_emu::Site(__FILE__, __LINE__).syncthreads_or
#define __syncwarp ::difftc_emu::Site(__FILE__, __LINE__).syncwarp
#define __shfl_sync ::difftc_emu::Site(__FILE__, __LINE__).shfl_sync
#define __shfl_up_sync ::difftc_emu::Site(__FILE__, __LINE__).shfl_up_sync
#define __shfl_down_sync ::difftc_emu::Site(__FILE__, __LINE__).shfl_down_sync
#define __shfl_xor_sync ::difftc_emu::Site(__FILE__, __LINE__).shfl_xor_sync
#define __ballot_sync ::difftc_emu::Site(__FILE__, __LINE__).ballot_sync
#define __any_sync ::difftc_emu::Site(__FILE__, __LINE__).any_sync
#define __all_sync ::difftc_emu::Site(__FILE__, __LINE__).all_sync

// DIFFTC_LAUNCH(kernel, grid, block, smem, args...): runs the whole grid, then returns.
#define DIFFTC_LAUNCH(kernel, grid, block, smem, ...) ::difftc_emu::launch(#kernel, kernel, grid, block, smem, ##__VA_ARGS__)

#endif  // DIFFTC_CUDA_EMU_H
