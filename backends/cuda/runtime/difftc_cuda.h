// difftc_cuda.h: the portability header every emitted .cu includes.
//
// Under nvcc (__CUDACC__) it is the CUDA runtime and DIFFTC_LAUNCH is a plain <<< >>> launch.
// Under any other C++17 compiler (g++ -O2 -std=c++17 -pthread -x c++) it is difftc's CPU
// emulation of the CUDA subset the generated code uses (difftc_cuda_emu.h): the same source
// then builds and runs on machines without a GPU. Launches are synchronous there.
//
//   DIFFTC_LAUNCH(kernel, grid, block, smem, args...)
//
// grid and block are dim3 (or integers); smem is the dynamic shared memory in bytes (the
// emulation supports only 0). Check for launch errors with cudaGetLastError() afterwards.
#ifndef DIFFTC_CUDA_H
#define DIFFTC_CUDA_H

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define DIFFTC_LAUNCH(kernel, grid, block, smem, ...) kernel<<<(grid), (block), (smem)>>>(__VA_ARGS__)
#else
#include "difftc_cuda_emu.h"
#endif

#endif  // DIFFTC_CUDA_H
