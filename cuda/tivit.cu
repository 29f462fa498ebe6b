// TiViT segment stacking (renderers/_tivit.py has the recipe). One thread per output pixel: the
// pixel averages the stacked-image pixels of its box; each of those is a value of the series,
// found through the stacked image's index map, robust-scaled, min-max scaled and gamma-corrected.
// The series statistics come from the row sorted on the host (min, max, quartiles, median).
#include "common.cuh"

// The scaling of one series, v = ((x - median) / denom - low) / range, in Real: float with the lower
// median (the published torch float32 code, operation for operation, so its pixels bit for bit),
// else double, as the NumPy reference, so that a series far from zero keeps its digits.
template <typename Real>
struct Scaling {
  Real median, denom, low, range;

  __device__ Scaling(const double* s, int length, bool lower_median, Real eps) {
    median = lower_median ? (Real)s[(length - 1) / 2] : sorted_quantile<Real>(s, length, (Real)0.5);
    Real q75 = sorted_quantile<Real>(s, length, (Real)0.75), q25 = sorted_quantile<Real>(s, length, (Real)0.25);
    denom = (q75 - q25) + eps;
    // scaling is monotone, so the image's min and max are the scaled min and max of the series
    low = ((Real)s[0] - median) / denom;
    Real high = ((Real)s[length - 1] - median) / denom;
    range = high - low + eps;
  }

  __device__ float operator()(double x) const { return (float)((((Real)x - median) / denom - low) / range); }
};

template <typename Real>
__device__ __forceinline__ float box_mean(const Scaling<Real>& scale, const double* xs, const int* index_map,
                                          int map_width, int r0, int r1, int c0, int c1, float gamma) {
  float total = 0.0f;
  for (int r = r0; r < r1; ++r)
    for (int c = c0; c < c1; ++c) total += powf(scale(xs[index_map[r * map_width + c]]), gamma);
  return total / (float)((r1 - r0) * (c1 - c0));
}

extern "C" __global__ void tivit_image(
    const double* x, const double* sorted, int length, long long n_series,
    const int* index_map, int map_width,
    const int* row_start, const int* row_end, const int* col_start, const int* col_end,
    int size, double eps, float gamma, int lower_median, int quantize,
    const long long* out_rows, float* out, int channels, const float* mean, const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    const double* s = sorted + b * length;
    const double* xs = x + b * length;
    int r0 = row_start[i], r1 = row_end[i], c0 = col_start[j], c1 = col_end[j];
    float value = lower_median
        ? box_mean(Scaling<float>(s, length, true, (float)eps), xs, index_map, map_width, r0, r1, c0, c1, gamma)
        : box_mean(Scaling<double>(s, length, false, eps), xs, index_map, map_width, r0, r1, c0, c1, gamma);
    if (quantize) value = floorf(value * 255.0f) / 255.0f;
    store_pixel(out, out_rows[b], channels, size, pixel, value, mean, stdev);
  }
}
