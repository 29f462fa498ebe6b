// TiViT segment stacking (renderers/_tivit.py has the recipe). One thread per output pixel: the
// pixel averages the stacked-image pixels of its box; each of those is a value of the series,
// found through the stacked image's index map, robust-scaled, min-max scaled and gamma-corrected.
// The series statistics come from the row sorted on the host (min, max, quartiles, median).
#include "common.cuh"

extern "C" __global__ void tivit_image(
    const float* x, const float* sorted, int length, long long n_series,
    const int* index_map, int map_width,
    const int* row_start, const int* row_end, const int* col_start, const int* col_end,
    int size, float eps, float gamma, int lower_median, int quantize,
    const long long* out_rows, float* out, int channels, const float* mean, const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    const float* s = sorted + b * length;
    const float* xs = x + b * length;
    float median = lower_median ? s[(length - 1) / 2] : sorted_quantile(s, length, 0.5f);
    float q75 = sorted_quantile(s, length, 0.75f), q25 = sorted_quantile(s, length, 0.25f);
    float denom = (q75 - q25) + eps;
    // scaling is monotone, so the image's min and max are the scaled min and max of the series
    float low = (s[0] - median) / denom;
    float high = (s[length - 1] - median) / denom;
    float range = high - low + eps;
    float total = 0.0f;
    for (int r = row_start[i]; r < row_end[i]; ++r) {
      for (int c = col_start[j]; c < col_end[j]; ++c) {
        float z = (xs[index_map[r * map_width + c]] - median) / denom;
        total += powf((z - low) / range, gamma);
      }
    }
    float value = total / (float)((row_end[i] - row_start[i]) * (col_end[j] - col_start[j]));
    if (quantize) value = floorf(value * 255.0f) / 255.0f;
    store_pixel(out, out_rows[b], channels, size, pixel, value, mean, stdev);
  }
}
