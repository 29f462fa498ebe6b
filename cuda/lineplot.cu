// Line plots (renderers/_lineplot.py has the geometry). One thread per output pixel: the distance
// from the pixel centre to the few segments that can reach its column, then 1 - coverage.
// The series is scaled in double (as the reference); the pixel geometry is float, as the torch backend's.
#include "common.cuh"

__device__ __forceinline__ float point_row(const double* xs, int t, double low, double span, double margin, int size) {
  double y = span > 0.0 ? margin + (1.0 - 2.0 * margin) * (xs[t] - low) / span : 0.5;
  return (float)((1.0 - y) * (size - 1));
}

__device__ __forceinline__ float point_col(int t, int length, int size) {
  return length > 1 ? (float)(t * ((double)(size - 1) / (double)(length - 1))) : (float)((size - 1) / 2.0);
}

extern "C" __global__ void lineplot_image(const double* x, int length, long long n_series, const double* low,
                                          const double* high, double margin, float reach, const int* first,
                                          const int* last, int size, const long long* out_rows, float* out,
                                          int channels, const float* mean, const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    const double* xs = x + b * length;
    double lo = low[b], span = high[b] - low[b];
    float px = (float)j, py = (float)i;
    float best;
    if (length == 1) {
      float dx = px - point_col(0, length, size), dy = py - point_row(xs, 0, lo, span, margin, size);
      best = sqrtf(dx * dx + dy * dy);
    } else {
      best = 3.4e38f;
      for (int t = first[j]; t <= last[j]; ++t) {
        float ax = point_col(t, length, size), ay = point_row(xs, t, lo, span, margin, size);
        float bx = point_col(t + 1, length, size), by = point_row(xs, t + 1, lo, span, margin, size);
        float dx = bx - ax, dy = by - ay;
        float norm = dx * dx + dy * dy;
        if (norm == 0.0f) norm = 1.0f;
        float u = ((px - ax) * dx + (py - ay) * dy) / norm;
        u = clamp01(u);
        float ex = px - ax - u * dx, ey = py - ay - u * dy;
        float d = sqrtf(ex * ex + ey * ey);
        best = d < best ? d : best;
      }
    }
    store_pixel(out, out_rows[b], channels, size, pixel, 1.0f - clamp01(reach - best), mean, stdev);
  }
}
