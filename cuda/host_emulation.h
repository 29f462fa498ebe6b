// Host emulation of the few CUDA built-ins the renderer kernels use, so that g++ compiles every
// kernel as a plain C function. Kernels use grid-stride loops; the emulating host sets the block
// and thread indices (emu_set_thread) and calls the kernel once per (block, thread), which runs the
// same index arithmetic as a real launch. Under nvcc/NVRTC this header adds nothing.
#pragma once

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#include <math.h>

#include <cmath>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct emu_dim3 {
  unsigned int x, y, z;
};

static emu_dim3 threadIdx = {0, 0, 0};
static emu_dim3 blockIdx = {0, 0, 0};
static emu_dim3 blockDim = {1, 1, 1};
static emu_dim3 gridDim = {1, 1, 1};

// Which (block, thread) of a grid of grid_dim blocks of block_dim threads the next call is.
extern "C" void emu_set_thread(unsigned int block, unsigned int thread, unsigned int grid_dim,
                               unsigned int block_dim) {
  blockIdx.x = block;
  threadIdx.x = thread;
  gridDim.x = grid_dim;
  blockDim.x = block_dim;
}

// Calls run one after another here, so an atomic is a plain read-modify-write.
inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
  unsigned long long old = *address;
  if (value > old) *address = value;
  return old;
}

inline long long __double_as_longlong(double value) {
  long long bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline double __longlong_as_double(long long bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

using std::fabs;
using std::floor;
using std::pow;
using std::sqrt;
#endif
