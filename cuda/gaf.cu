// Gramian angular fields (renderers/_gaf.py has the definition, pyts's).
// gaf_paa: block means (one thread per PAA value); gaf_angles: min-max to [-1, 1], cos and sin
// (one thread per series); gaf_image: one thread per output pixel, (G + 1) / 2.
#include "common.cuh"

extern "C" __global__ void gaf_paa(const double* x, int length, long long n_series, const int* start,
                                   const int* end, int m, double* paa) {
  GRID_STRIDE(k, n_series * m) {
    long long b = k / m;
    int i = (int)(k - b * m);
    // the means of x - x[0], then x[0] back (renderers/_gaf.py): a flat series gives equal means
    double first = x[b * length], total = 0.0;
    for (int t = start[i]; t < end[i]; ++t) total += x[b * length + t] - first;
    paa[k] = first + total / (double)(end[i] - start[i]);
  }
}

// In place: paa becomes cos; sin is written alongside. scikit-learn's MinMaxScaler to (-1, 1).
extern "C" __global__ void gaf_angles(double* paa, double* sin_out, long long n_series, int m) {
  GRID_STRIDE(b, n_series) {
    double* p = paa + b * m;
    double low = p[0], high = p[0];
    for (int i = 1; i < m; ++i) {
      low = p[i] < low ? p[i] : low;
      high = p[i] > high ? p[i] : high;
    }
    double span = high - low;
    if (span < 10 * 2.220446049250313e-16) span = 1.0;
    double scale = 2.0 / span, shift = -1.0 - low * scale;
    for (int i = 0; i < m; ++i) {
      double c = p[i] * scale + shift;
      double s2 = 1.0 - c * c;
      p[i] = c;
      sin_out[b * m + i] = sqrt(s2 < 0.0 ? 0.0 : (s2 > 1.0 ? 1.0 : s2));
    }
  }
}

extern "C" __global__ void gaf_image(const double* cosv, const double* sinv, long long n_series, int m,
                                     const int* grow, int size, int difference,
                                     const long long* out_rows, float* out, int channels, const float* mean,
                                     const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    float ci = (float)cosv[b * m + grow[i]], si = (float)sinv[b * m + grow[i]];
    float cj = (float)cosv[b * m + grow[j]], sj = (float)sinv[b * m + grow[j]];
    float field = difference ? si * cj - ci * sj : ci * cj - si * sj;
    store_pixel(out, out_rows[b], channels, size, pixel, clamp01(0.5f + 0.5f * field), mean, stdev);
  }
}
