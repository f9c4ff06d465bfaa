// Element-wise ops, column reductions and the max-pool gradient on every core (OpenMP), for
// the large tensors of a training step (activations, filters and their optimizer slots).
// Results are those of the IEEE float32 operations tfjs's kernels perform (add, sub, mul, div,
// sqrt are correctly rounded in both), except sums, accumulated here in double precision.
// Reference semantics: tfjs-backend-cpu's Add/Sub/Multiply/RealDiv/Sqrt/Square,
// Sum/Mean over all but the last axis, and MaxPoolGrad (pool_utils.ts maxPoolPositions: the
// first maximum of each window, in row-major order, receives the gradient).
#include <omp.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "native.h"

namespace pipe_native {
namespace {

// Below this many elements a loop runs on the calling thread: waking OpenMP's other threads
// costs more than they save (much more on a loaded machine, where they wait for a time slice).
constexpr long kParallelMin = 1L << 18;

inline float* fptr(char* heap, double off) { return reinterpret_cast<float*>(heap + static_cast<size_t>(off)); }

template <typename F>
void binary_loop(int mode, const float* a, const float* b, float* out, long n, long inner, F f) {
  // One loop per broadcast mode, so that each vectorises.
  if (mode == 0) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  } else if (mode == 1) {
    const float s = a[0];
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long i = 0; i < n; i++) out[i] = f(s, b[i]);
  } else if (mode == 2) {
    const float s = b[0];
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long i = 0; i < n; i++) out[i] = f(a[i], s);
  } else {
    const long rows = n / inner;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long r = 0; r < rows; r++) {
      const long o = r * inner;
      if (mode == 3) {
        for (long c = 0; c < inner; c++) out[o + c] = f(a[o + c], b[c]);
      } else {
        for (long c = 0; c < inner; c++) out[o + c] = f(a[c], b[o + c]);
      }
    }
  }
}

template <typename F>
void unary_loop(const float* x, float* out, long n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long i = 0; i < n; i++) out[i] = f(x[i]);
}

}  // namespace

void binary(char* heap, size_t heap_len, const double* p) {
  const int op = static_cast<int>(p[0]), mode = static_cast<int>(p[1]);
  const long n = static_cast<long>(p[5]), inner = static_cast<long>(p[6]);
  if (mode < 0 || mode > 4 || ((mode == 3 || mode == 4) && (inner <= 0 || n % inner != 0))) throw std::runtime_error("binary: bad broadcast mode");
  const double a_n = mode == 1 ? 1 : mode == 4 ? inner : n, b_n = mode == 2 ? 1 : mode == 3 ? inner : n;
  check_range(p[2], a_n, heap_len, "a");
  check_range(p[3], b_n, heap_len, "b");
  check_range(p[4], n, heap_len, "out");
  const float *a = fptr(heap, p[2]), *b = fptr(heap, p[3]);
  float* out = fptr(heap, p[4]);
  switch (op) {
    case 0: binary_loop(mode, a, b, out, n, inner, [](float u, float v) { return u + v; }); break;
    case 1: binary_loop(mode, a, b, out, n, inner, [](float u, float v) { return u - v; }); break;
    case 2: binary_loop(mode, a, b, out, n, inner, [](float u, float v) { return u * v; }); break;
    case 3: binary_loop(mode, a, b, out, n, inner, [](float u, float v) { return u / v; }); break;
    default: throw std::runtime_error("binary: unknown op");
  }
}

void unary(char* heap, size_t heap_len, const double* p) {
  const long n = static_cast<long>(p[3]);
  check_range(p[1], n, heap_len, "x");
  check_range(p[2], n, heap_len, "out");
  const float* x = fptr(heap, p[1]);
  float* out = fptr(heap, p[2]);
  switch (static_cast<int>(p[0])) {
    case 0: unary_loop(x, out, n, [](float v) { return std::sqrt(v); }); break;
    case 1: unary_loop(x, out, n, [](float v) { return v * v; }); break;
    default: throw std::runtime_error("unary: unknown op");
  }
}

void reduce_rows(char* heap, size_t heap_len, const double* p) {
  const long rows = static_cast<long>(p[3]), cols = static_cast<long>(p[4]);
  check_range(p[1], static_cast<double>(rows) * cols, heap_len, "x");
  check_range(p[2], cols, heap_len, "out");
  const float* x = fptr(heap, p[1]);
  float* out = fptr(heap, p[2]);
  const int threads = rows * cols >= kParallelMin ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(threads) * cols, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * cols;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) {
      const float* row = x + r * cols;
      for (long c = 0; c < cols; c++) acc[c] += row[c];
    }
  }
  const double scale = p[0] == 1 ? 1.0 / static_cast<double>(rows) : 1.0;
  for (long c = 0; c < cols; c++) {
    double s = 0;
    for (int t = 0; t < threads; t++) s += partial[static_cast<size_t>(t) * cols + c];
    out[c] = static_cast<float>(s * scale);
  }
}

void max_pool_grad(char* heap, size_t heap_len, const double* p) {
  const long N = p[0], H = p[1], W = p[2], C = p[3], OH = p[4], OW = p[5], KH = p[6], KW = p[7], SH = p[8], SW = p[9], PT = p[10], PL = p[11];
  check_range(p[12], static_cast<double>(N) * H * W * C, heap_len, "x");
  check_range(p[13], static_cast<double>(N) * OH * OW * C, heap_len, "dy");
  check_range(p[14], static_cast<double>(N) * H * W * C, heap_len, "dx");
  const float *x = fptr(heap, p[12]), *dy = fptr(heap, p[13]);
  float* dx = fptr(heap, p[14]);
  std::memset(dx, 0, static_cast<size_t>(N * H * W * C) * 4);
  // Images are independent: one image's windows only scatter into that image.
#pragma omp parallel for schedule(static) if (N * H * W * C >= kParallelMin)
  for (long n = 0; n < N; n++) {
    const float* xn = x + n * H * W * C;
    float* dxn = dx + n * H * W * C;
    for (long i = 0; i < OH; i++) {
      for (long j = 0; j < OW; j++) {
        for (long c = 0; c < C; c++) {
          float best = -INFINITY;
          long at = -1;
          for (long a = 0; a < KH; a++) {
            const long h = i * SH + a - PT;
            if (h < 0 || h >= H) continue;
            for (long b = 0; b < KW; b++) {
              const long w = j * SW + b - PL;
              if (w < 0 || w >= W) continue;
              const float v = xn[(h * W + w) * C + c];
              if (v > best) best = v, at = (h * W + w) * C + c;
            }
          }
          if (at >= 0) dxn[at] += dy[((n * OH + i) * OW + j) * C + c];
        }
      }
    }
  }
}

void batch_norm(char* heap, size_t heap_len, const double* p) {
  const long n = static_cast<long>(p[2]), C = static_cast<long>(p[3]);
  if (C <= 0 || n % C != 0) throw std::runtime_error("batch_norm: size is not a multiple of the channels");
  check_range(p[0], n, heap_len, "x");
  check_range(p[1], n, heap_len, "out");
  const char* names[] = {"mean", "variance", "offset", "scale"};
  for (int k = 0; k < 4; k++) {
    if (p[9 + k] != 1 && p[9 + k] != C) throw std::runtime_error("batch_norm: parameters must have 1 or C values");
    if (p[4 + k] >= 0) check_range(p[4 + k], p[9 + k], heap_len, names[k]);
  }
  // Per channel, in double as tfjs-backend-cpu's JS arithmetic: y = offset + (x - mean) * scale / sqrt(var + eps).
  auto param = [&](int k, long c, double dflt) -> double {
    if (p[4 + k] < 0) return dflt;
    return fptr(heap, p[4 + k])[p[9 + k] == 1 ? 0 : c];
  };
  std::vector<double> mean(C), gain(C), off(C);
  for (long c = 0; c < C; c++) {
    mean[c] = param(0, c, 0);
    gain[c] = param(3, c, 1) / std::sqrt(param(1, c, 1) + p[8]);
    off[c] = param(2, c, 0);
  }
  const float* x = fptr(heap, p[0]);
  float* out = fptr(heap, p[1]);
  const long rows = n / C;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float* yr = out + r * C;
    for (long c = 0; c < C; c++) yr[c] = static_cast<float>(off[c] + (xr[c] - mean[c]) * gain[c]);
  }
}

void adam(char* heap, size_t heap_len, const double* p) {
  const long n = static_cast<long>(p[7]);
  const char* names[] = {"w", "g", "m", "v", "new w", "new m", "new v"};
  for (int k = 0; k < 7; k++) check_range(p[k], n, heap_len, names[k]);
  check_range(p[8], 1, heap_len, "1 - beta1^t");
  check_range(p[9], 1, heap_len, "1 - beta2^t");
  const float *w = fptr(heap, p[0]), *g = fptr(heap, p[1]), *m = fptr(heap, p[2]), *v = fptr(heap, p[3]);
  float *w1 = fptr(heap, p[4]), *m1 = fptr(heap, p[5]), *v1 = fptr(heap, p[6]);
  const float omab1 = *fptr(heap, p[8]), omab2 = *fptr(heap, p[9]);
  const float b1 = p[10], c1 = p[11], b2 = p[12], c2 = p[13], eps = p[14], nlr = p[15];
  // tfjs-core AdamOptimizer.applyGradients, one float32 operation at a time, in its order.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * c1;
    const float gg = gi * gi;
    const float vi = v[i] * b2 + gg * c2;
    const float mh = mi / omab1, vh = vi / omab2;
    const float den = std::sqrt(vh) + eps;
    const float step = (mh / den) * nlr;
    m1[i] = mi;
    v1[i] = vi;
    w1[i] = step + w[i];
  }
}

}  // namespace pipe_native
