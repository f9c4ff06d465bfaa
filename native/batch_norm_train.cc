// Training-mode batch normalisation as two kernels (Ioffe & Szegedy 2015, "Batch
// Normalization", Algorithm 1 and its backward pass in closed form), NHWC: x is `rows` rows of
// C channels. Statistics and gradient sums are accumulated in double precision per thread, then
// combined (PyTorch's CPU kernel accumulates them in double as well), and the per-element
// arithmetic (y, dx) is done in double and rounded once (test/unit/batch-norm-train.test.ts,
// test/unit/parity.test.ts). Replaces the ~8 forward and
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

// K per-channel sums over all rows, in double: f(r, acc) adds row r's terms to acc[k * C + c]
// (k < K); out[k * C + c] receives the totals. On every core when the tensor is large, each
// thread summing its own static block of rows, the blocks' sums then added in thread order.
template <int K, typename F>
void channel_sums(long rows, long C, std::vector<double>& out, F f) {
  const int threads = rows * C >= kParallelMin ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(threads) * K * C, 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * K * C;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; r++) f(r, acc);
  }
  out.assign(static_cast<size_t>(K * C), 0.0);
  for (int t = 0; t < threads; t++) {
    for (long k = 0; k < K * C; k++) out[k] += partial[static_cast<size_t>(t) * K * C + k];
  }
}

}  // namespace

void bn_train_forward(const float* x, float* y, float* mean_out, float* var_out, const float* gamma, const float* beta, long rows, long C, double eps,
                      const float* residual, bool relu) {
  std::vector<double> s;
  channel_sums<2>(rows, C, s, [&](long r, double* acc) {
    const float* xr = x + r * C;
    for (long c = 0; c < C; c++) {
      acc[c] += xr[c];
      acc[C + c] += static_cast<double>(xr[c]) * xr[c];
    }
  });
  std::vector<double> scale(C), shift(C);
  for (long c = 0; c < C; c++) {
    const double mean = s[c] / rows, var = std::max(0.0, s[C + c] / rows - mean * mean);  // biased
    const double g = gamma[c] / std::sqrt(var + eps);
    scale[c] = g;
    shift[c] = beta[c] - mean * g;
    mean_out[c] = static_cast<float>(mean);
    var_out[c] = static_cast<float>(var);
  }
  // One loop per variant, so that each vectorises; bn(x) = x * scale + shift in double, rounded
  // once (float32 constants would put every element of a channel off in the same direction, an
  // error later sums do not average away), then the float32 operations of the separate tfjs ops
  // (+ residual rounded, then max(0, .)).
#pragma omp parallel for schedule(static) if (rows * C >= kParallelMin)
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    if (residual) {
      const float* rr = residual + r * C;
      if (relu) {
        for (long c = 0; c < C; c++) yr[c] = std::max(0.f, static_cast<float>(xr[c] * scale[c] + shift[c]) + rr[c]);
      } else {
        for (long c = 0; c < C; c++) yr[c] = static_cast<float>(xr[c] * scale[c] + shift[c]) + rr[c];
      }
    } else if (relu) {
      for (long c = 0; c < C; c++) yr[c] = std::max(0.f, static_cast<float>(xr[c] * scale[c] + shift[c]));
    } else {
      for (long c = 0; c < C; c++) yr[c] = static_cast<float>(xr[c] * scale[c] + shift[c]);
    }
  }
}

void bn_train_backward(const float* x, const float* dy, const float* mean, const float* /* var: not read */, const float* gamma, float* dx, float* dgamma,
                       float* dbeta, long rows, long C, double eps, const float* y_mask, float* g_out) {
  // The ReLU's gradient (g = dy where the output is positive, else 0) is applied on the fly, and
  // written to g_out when asked. The batch statistics are recovered in double, summed again from
  // x around the forward's float32 mean m (its rounding would otherwise put (x - mean) off by the
  // same amount in every element of a channel, and dgamma = sum(g * xhat) sums that up: tens of
  // ulps where |mean| >> std; torch's CPU backward reads its float32 saved mean so):
  // sum(x - m), sum((x - m)^2), sum(g), sum(g * (x - m)); then mean = m + d, d = sum(x - m) / rows.
  std::vector<double> s;
  channel_sums<4>(rows, C, s, [&](long r, double* acc) {
    const float *xr = x + r * C, *dyr = dy + r * C, *yr = y_mask ? y_mask + r * C : nullptr;
    float* gr = g_out ? g_out + r * C : nullptr;
    for (long c = 0; c < C; c++) {
      const float g = yr && !(yr[c] > 0.f) ? 0.f : dyr[c];
      if (gr) gr[c] = g;
      const double xm = static_cast<double>(xr[c]) - mean[c];
      acc[c] += xm;
      acc[C + c] += xm * xm;
      acc[2 * C + c] += g;
      acc[3 * C + c] += g * xm;
    }
  });
  // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * invstd,
  // per element in double, rounded once.
  std::vector<double> mu(C), a(C), b(C), k(C);
  for (long c = 0; c < C; c++) {
    const double d = s[c] / rows, var = std::max(0.0, s[C + c] / rows - d * d);  // biased
    const double invstd = 1.0 / std::sqrt(var + eps);
    const double sg = s[2 * C + c], sgx = s[3 * C + c] - d * sg;  // sum(g * (x - mean))
    mu[c] = mean[c] + d;
    dbeta[c] = static_cast<float>(sg);
    dgamma[c] = static_cast<float>(sgx * invstd);
    const double gc = gamma[c] * invstd;
    a[c] = gc;                                // times g
    k[c] = gc * invstd * invstd * sgx / rows;  // times (x - mean)
    b[c] = gc * sg / rows;                    // subtracted
  }
  const float* g_in = g_out ? g_out : dy;  // the masked gradient, when it was written out
  const float* mask = g_out ? nullptr : y_mask;
#pragma omp parallel for schedule(static) if (rows * C >= kParallelMin)
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C, *gr = g_in + r * C;
    float* dxr = dx + r * C;
    if (mask) {
      const float* yr = mask + r * C;
      for (long c = 0; c < C; c++) dxr[c] = static_cast<float>(a[c] * (yr[c] > 0.f ? gr[c] : 0.f) - k[c] * (xr[c] - mu[c]) - b[c]);
    } else {
      for (long c = 0; c < C; c++) dxr[c] = static_cast<float>(a[c] * gr[c] - k[c] * (xr[c] - mu[c]) - b[c]);
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
