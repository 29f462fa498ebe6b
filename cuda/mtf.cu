// Markov transition fields (renderers/_mtf.py has the definition, pyts's).
// mtf_bins: quantile bin of each value (one thread per value); mtf_matrix: the row-normalised
// transition matrix W (one thread per series); mtf_shares: H[i, u], the share of block i's values
// in bin u (one thread per block); mtf_image: (H W H^T)[i, j] (one thread per output pixel).
#include "common.cuh"

// levels: the n_bins - 1 quantile levels of the inner edges, from the host (renderers._mtf.levels)
extern "C" __global__ void mtf_bins(const double* x, const double* sorted, int length, long long n_series,
                                    int n_bins, const double* levels, int* bins) {
  GRID_STRIDE(k, n_series * length) {
    long long b = k / length;
    const double* s = sorted + b * length;
    double value = x[k];
    int bin = 0;
    double edge = sorted_quantile<double>(s, length, levels[0]);
    for (int e = 1; e < n_bins; ++e) {
      double next = e + 1 < n_bins ? sorted_quantile<double>(s, length, levels[e]) : 0.0;
      // pyts drops an edge within 1e-8 of the next one (only with more than 2 bins)
      bool keep = e + 1 == n_bins || n_bins <= 2 || fabs(next - edge) > 1e-8;
      if (keep && edge < value) ++bin;
      edge = next;
    }
    bins[k] = bin;
  }
}

extern "C" __global__ void mtf_matrix(const int* bins, int length, long long n_series, int n_bins, double* w) {
  GRID_STRIDE(b, n_series) {
    double* wb = w + b * n_bins * n_bins;
    for (int u = 0; u < n_bins * n_bins; ++u) wb[u] = 0.0;
    const int* q = bins + b * length;
    for (int t = 0; t + 1 < length; ++t) wb[q[t] * n_bins + q[t + 1]] += 1.0;
    for (int u = 0; u < n_bins; ++u) {
      double total = 0.0;
      for (int v = 0; v < n_bins; ++v) total += wb[u * n_bins + v];
      if (total == 0.0) total = 1.0;
      for (int v = 0; v < n_bins; ++v) wb[u * n_bins + v] /= total;
    }
  }
}

extern "C" __global__ void mtf_shares(const int* bins, int length, long long n_series, int n_bins,
                                      const int* start, const int* end, int m, double* shares) {
  GRID_STRIDE(k, n_series * m) {
    long long b = k / m;
    int i = (int)(k - b * m);
    double* h = shares + k * n_bins;
    for (int u = 0; u < n_bins; ++u) h[u] = 0.0;
    double weight = 1.0 / (double)(end[i] - start[i]);
    for (int t = start[i]; t < end[i]; ++t) h[bins[b * length + t]] += weight;
  }
}

extern "C" __global__ void mtf_image(const double* w, const double* shares, long long n_series, int n_bins, int m,
                                     const int* grow, int size, const long long* out_rows, float* out,
                                     int channels, const float* mean, const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    const double* wb = w + b * n_bins * n_bins;
    const double* hi = shares + (b * m + grow[i]) * n_bins;
    const double* hj = shares + (b * m + grow[j]) * n_bins;
    double total = 0.0;
    for (int u = 0; u < n_bins; ++u) {
      if (hi[u] == 0.0) continue;
      double row = 0.0;
      for (int v = 0; v < n_bins; ++v) row += wb[u * n_bins + v] * hj[v];
      total += hi[u] * row;
    }
    store_pixel(out, out_rows[b], channels, size, pixel, clamp01((float)total), mean, stdev);
  }
}
