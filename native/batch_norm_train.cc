// Training-mode batch normalisation as two kernels (Ioffe & Szegedy 2015, "Batch
// Normalization", Algorithm 1 and its backward pass in closed form), NHWC: x is `rows` rows of
// C channels. Statistics and gradient sums are accumulated in double precision per thread, then
// combined (PyTorch's CPU kernel accumulates them in double as well). Replaces the ~8 forward and
// ~15 backward tfjs ops of the composite form (src/models/layers.ts BatchNorm2d).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "native.h"

namespace pipe_native {
namespace {

constexpr long kParallelMin = 1L << 18;  // as pointwise.cc: below this, one thread

inline float* fptr(char* heap, double off) { return reinterpret_cast<float*>(heap + static_cast<size_t>(off)); }

// Per-channel sums of f(row, c) over all rows into out[0..C), two sums per channel
// (out[c] and out[C + c]), in double, on every core when the tensor is large.
template <typename F>
void channel_sums(long rows, long C, std::vector<double>& out, F f) {
  const int threads = rows * C >= kParallelMin ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(threads) * 2 * C, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * C;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) f(r, acc, acc + C);
  }
  out.assign(static_cast<size_t>(2 * C), 0.0);
  for (int t = 0; t < threads; t++) {
    for (long k = 0; k < 2 * C; k++) out[k] += partial[static_cast<size_t>(t) * 2 * C + k];
  }
}

}  // namespace

void bn_train_forward(const float* x, float* y, float* mean_out, float* var_out, const float* gamma, const float* beta, long rows, long C, double eps,
                      const float* residual, bool relu) {
  std::vector<double> s;
  channel_sums(rows, C, s, [&](long r, double* sx, double* sxx) {
    const float* xr = x + r * C;
    for (long c = 0; c < C; c++) {
      sx[c] += xr[c];
      sxx[c] += static_cast<double>(xr[c]) * xr[c];
    }
  });
  std::vector<float> scale(C), shift(C);
  for (long c = 0; c < C; c++) {
    const double mean = s[c] / rows, var = std::max(0.0, s[C + c] / rows - mean * mean);  // biased
    const double g = gamma[c] / std::sqrt(var + eps);
    scale[c] = static_cast<float>(g);
    shift[c] = static_cast<float>(beta[c] - mean * g);
    mean_out[c] = static_cast<float>(mean);
    var_out[c] = static_cast<float>(var);
  }
  // One loop per variant, so that each vectorises; the float32 operations are those of the
  // separate tfjs ops (BN output rounded, then + residual rounded, then max(0, .)).
#pragma omp parallel for schedule(static) if (rows * C >= kParallelMin)
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    if (residual) {
      const float* rr = residual + r * C;
      if (relu) {
        for (long c = 0; c < C; c++) yr[c] = std::max(0.f, (xr[c] * scale[c] + shift[c]) + rr[c]);
      } else {
        for (long c = 0; c < C; c++) yr[c] = (xr[c] * scale[c] + shift[c]) + rr[c];
      }
    } else if (relu) {
      for (long c = 0; c < C; c++) yr[c] = std::max(0.f, xr[c] * scale[c] + shift[c]);
    } else {
      for (long c = 0; c < C; c++) yr[c] = xr[c] * scale[c] + shift[c];
    }
  }
}

void bn_train_backward(const float* x, const float* dy, const float* mean, const float* var, const float* gamma, float* dx, float* dgamma, float* dbeta, long rows,
                       long C, double eps, const float* y_mask, float* g_out) {
  std::vector<double> invstd(C);
  for (long c = 0; c < C; c++) invstd[c] = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
  // The ReLU's gradient (dy where the output is positive, else 0) is applied on the fly, and
  // written to g_out when asked; then sum(g) and sum(g * (x - mean)) per channel.
  std::vector<double> s;
  channel_sums(rows, C, s, [&](long r, double* sdy, double* sdyx) {
    const float *xr = x + r * C, *dyr = dy + r * C, *yr = y_mask ? y_mask + r * C : nullptr;
    float* gr = g_out ? g_out + r * C : nullptr;
    for (long c = 0; c < C; c++) {
      const float g = yr && !(yr[c] > 0.f) ? 0.f : dyr[c];
      if (gr) gr[c] = g;
      sdy[c] += g;
      sdyx[c] += static_cast<double>(g) * (xr[c] - mean[c]);
    }
  });
  // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * invstd.
  std::vector<float> a(C), b(C), k(C);
  for (long c = 0; c < C; c++) {
    dbeta[c] = static_cast<float>(s[c]);
    dgamma[c] = static_cast<float>(s[C + c] * invstd[c]);
    const double gc = gamma[c] * invstd[c];
    a[c] = static_cast<float>(gc);                                                   // times g
    k[c] = static_cast<float>(gc * invstd[c] * invstd[c] * s[C + c] / rows);         // times (x - mean)
    b[c] = static_cast<float>(gc * s[c] / rows);                                     // subtracted
  }
  const float* g_in = g_out ? g_out : dy;  // the masked gradient, when it was written out
  const float* mask = g_out ? nullptr : y_mask;
#pragma omp parallel for schedule(static) if (rows * C >= kParallelMin)
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C, *gr = g_in + r * C;
    float* dxr = dx + r * C;
    if (mask) {
      const float* yr = mask + r * C;
      for (long c = 0; c < C; c++) dxr[c] = a[c] * (yr[c] > 0.f ? gr[c] : 0.f) - k[c] * (xr[c] - mean[c]) - b[c];
    } else {
      for (long c = 0; c < C; c++) dxr[c] = a[c] * gr[c] - k[c] * (xr[c] - mean[c]) - b[c];
    }
  }
}

void batch_norm_train(char* heap, size_t heap_len, const double* p) {
  const long rows = static_cast<long>(p[6]), C = static_cast<long>(p[7]);
  if (rows < 1 || C < 1) throw std::runtime_error("batch_norm_train: empty input");
  check_range(p[0], static_cast<double>(rows) * C, heap_len, "x");
  check_range(p[1], static_cast<double>(rows) * C, heap_len, "y");
  check_range(p[2], C, heap_len, "mean");
  check_range(p[3], C, heap_len, "variance");
  check_range(p[4], C, heap_len, "gamma");
  check_range(p[5], C, heap_len, "beta");
  bn_train_forward(fptr(heap, p[0]), fptr(heap, p[1]), fptr(heap, p[2]), fptr(heap, p[3]), fptr(heap, p[4]), fptr(heap, p[5]), rows, C, p[8], nullptr, false);
}

void batch_norm_train_grad(char* heap, size_t heap_len, const double* p) {
  const long rows = static_cast<long>(p[8]), C = static_cast<long>(p[9]);
  if (rows < 1 || C < 1) throw std::runtime_error("batch_norm_train_grad: empty input");
  check_range(p[0], static_cast<double>(rows) * C, heap_len, "x");
  check_range(p[1], static_cast<double>(rows) * C, heap_len, "dy");
  check_range(p[2], C, heap_len, "mean");
  check_range(p[3], C, heap_len, "variance");
  check_range(p[4], C, heap_len, "gamma");
  check_range(p[5], static_cast<double>(rows) * C, heap_len, "dx");
  check_range(p[6], C, heap_len, "dgamma");
  check_range(p[7], C, heap_len, "dbeta");
  bn_train_backward(fptr(heap, p[0]), fptr(heap, p[1]), fptr(heap, p[2]), fptr(heap, p[3]), fptr(heap, p[4]), fptr(heap, p[5]), fptr(heap, p[6]), fptr(heap, p[7]), rows,
                    C, p[10], nullptr, nullptr);
}

}  // namespace pipe_native
