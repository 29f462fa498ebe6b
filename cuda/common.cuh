// Helpers shared by the renderer kernels: the grid-stride loop, the quantile of a sorted row, and
// the epilogue that writes a grey value into C normalised channels of the output.
#pragma once

#include "host_emulation.h"

// Each thread handles items i, i + (all threads), ... so any launch size covers `total` items.
#define GRID_STRIDE(i, total)                                                   \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
       i += (long long)blockDim.x * gridDim.x)

// numpy's / torch's linear quantile of a sorted float64 row of n values, computed in Real: double as
// numpy on float64 (the reference, pyts's bin edges), or float as torch on float32 (the published
// TiViT code), the values then rounded to float first, as torch's .float() does.
template <typename Real>
__device__ __forceinline__ Real sorted_quantile(const double* sorted, int n, Real q) {
  Real pos = q * (Real)(n - 1);
  int lo = (int)floor(pos);
  int hi = lo + 1 < n ? lo + 1 : n - 1;
  Real t = pos - (Real)lo;
  Real a = (Real)sorted[lo], b = (Real)sorted[hi], d = b - a;
  return t >= (Real)0.5 ? b - d * ((Real)1 - t) : a + d * t;
}

__device__ __forceinline__ float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

// out is (rows, channels, size, size) float32; channel c gets (value - mean[c]) / stdev[c].
__device__ __forceinline__ void store_pixel(float* out, long long row, int channels, int size, long long pixel,
                                            float value, const float* mean, const float* stdev) {
  long long plane = (long long)size * size;
  float* base = out + row * channels * plane + pixel;
  for (int c = 0; c < channels; ++c) base[c * plane] = (value - mean[c]) / stdev[c];
}

// Decompose a linear index over (series, row, column) of size x size images.
#define PIXEL_INDEX(k, size, b, i, j)                  \
  long long b = (k) / ((long long)(size) * (size));    \
  long long pixel = (k) - b * (long long)(size) * (size); \
  int i = (int)(pixel / (size));                       \
  int j = (int)(pixel - (long long)i * (size))
