// Recurrence plots (renderers/_recurrence.py has the definition, pyts's). Distances in double.
// recurrence_max / recurrence_distances: one thread per pair of trajectories; recurrence_image:
// one thread per output pixel, the mean over its block of pairs of D / limit (mode 0) or
// D < limit (mode 1).
#include "common.cuh"

__device__ __forceinline__ double trajectory_distance(const double* xs, int a, int c, int dimension, int delay) {
  if (dimension == 1) return fabs(xs[a] - xs[c]);
  double total = 0.0;
  for (int d = 0; d < dimension; ++d) {
    double diff = xs[a + d * delay] - xs[c + d * delay];
    total += diff * diff;
  }
  return sqrt(total);
}

// top[b] holds the bits of a non-negative double, which order like the doubles themselves.
extern "C" __global__ void recurrence_max(const double* x, int length, long long n_series, int n_traj,
                                          int dimension, int delay, unsigned long long* top) {
  GRID_STRIDE(k, n_series * n_traj * n_traj) {
    long long b = k / ((long long)n_traj * n_traj);
    long long pair = k - b * n_traj * n_traj;
    double d = trajectory_distance(x + b * length, (int)(pair / n_traj), (int)(pair % n_traj), dimension, delay);
    atomicMax(top + b, (unsigned long long)__double_as_longlong(d));
  }
}

extern "C" __global__ void recurrence_distances(const double* x, int length, long long n_series, int n_traj,
                                                int dimension, int delay, double* dist) {
  GRID_STRIDE(k, n_series * n_traj * n_traj) {
    long long b = k / ((long long)n_traj * n_traj);
    long long pair = k - b * n_traj * n_traj;
    dist[k] = trajectory_distance(x + b * length, (int)(pair / n_traj), (int)(pair % n_traj), dimension, delay);
  }
}

extern "C" __global__ void recurrence_image(const double* x, int length, long long n_series, int n_traj,
                                            int dimension, int delay, const double* limit, int mode,
                                            const int* start, const int* end, int size,
                                            const long long* out_rows, float* out, int channels,
                                            const float* mean, const float* stdev) {
  GRID_STRIDE(k, n_series * size * size) {
    PIXEL_INDEX(k, size, b, i, j);
    const double* xs = x + b * length;
    double lim = limit[b];
    double total = 0.0;
    for (int a = start[i]; a < end[i]; ++a) {
      for (int c = start[j]; c < end[j]; ++c) {
        double d = trajectory_distance(xs, a, c, dimension, delay);
        total += mode == 0 ? (lim > 0.0 ? d / lim : 0.0) : (d < lim ? 1.0 : 0.0);
      }
    }
    double count = (double)(end[i] - start[i]) * (double)(end[j] - start[j]);
    store_pixel(out, out_rows[b], channels, size, pixel, clamp01((float)(total / count)), mean, stdev);
  }
}
