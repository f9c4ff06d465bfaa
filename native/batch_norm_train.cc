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

// Below this many elements a kernel runs on the calling thread, as in pointwise.cc (measured:
// 2^15 made mini_resnet's step slower on a loaded machine, where the second thread waits for a
// time slice).
constexpr long kParallelMin = 1L << 18;

// The row loops are compiled twice, for AVX2 and for any x86-64, and the CPU picks one when the
// addon loads (GCC target_clones, an ifunc; oneDNN does the same for its kernels). Same IEEE
// double arithmetic in both (no FMA contraction: -std=c++17 keeps -ffp-contract=off), so the
// results do not depend on the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PIPE_ROWS __attribute__((target_clones("avx2", "default")))
#else
#define PIPE_ROWS
#endif

inline float* fptr(char* heap, double off) { return reinterpret_cast<float*>(heap + static_cast<size_t>(off)); }

// Runs rows(r0, r1, acc) over [0, rows) on every core when the tensor is large: each thread takes
// one contiguous block of rows (in thread order) and its own K*C doubles of acc; `out` receives
// the blocks' acc added in thread order (acc_len = 0: nothing to sum).
template <typename F>
void row_blocks(long rows, long C, long acc_len, std::vector<double>& out, F rows_fn) {
  const int threads = rows * C >= kParallelMin ? std::max(1, omp_get_max_threads()) : 1;
  std::vector<double> partial(static_cast<size_t>(threads) * acc_len, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const long r0 = rows * t / n, r1 = rows * (t + 1) / n;
    if (r1 > r0) rows_fn(r0, r1, partial.data() + static_cast<size_t>(t) * acc_len);
  }
  out.assign(static_cast<size_t>(acc_len), 0.0);
  for (int t = 0; t < threads; t++) {
    for (long k = 0; k < acc_len; k++) out[k] += partial[static_cast<size_t>(t) * acc_len + k];
  }
}

// Forward statistics of rows [r0, r1): acc[c] += x, acc[C + c] += x^2 (double).
PIPE_ROWS void fwd_sums(const float* __restrict x, long r0, long r1, long C, double* __restrict acc) {
  for (long r = r0; r < r1; r++) {
    const float* __restrict xr = x + r * C;
    for (long c = 0; c < C; c++) {
      const double v = xr[c];
      acc[c] += v;
      acc[C + c] += v * v;
    }
  }
}

// y = act(bn(x) + residual) for rows [r0, r1); bn(x) = x * scale + shift in double, rounded once.
PIPE_ROWS void fwd_y(const float* __restrict x, float* __restrict y, const double* __restrict scale, const double* __restrict shift, const float* __restrict residual,
                     bool relu, long r0, long r1, long C) {
  // One loop per variant, so that each vectorises; then the float32 operations of the separate
  // tfjs ops (+ residual rounded, then max(0, .)).
  for (long r = r0; r < r1; r++) {
    const float* __restrict xr = x + r * C;
    float* __restrict yr = y + r * C;
    if (residual) {
      const float* __restrict rr = residual + r * C;
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

// Backward statistics of rows [r0, r1), in double: sum(x - m), sum((x - m)^2), sum(g),
// sum(g * (x - m)) into acc[0..4C), with g = dy masked by the ReLU (y > 0) when `mask` is given,
// and g written to g_out when asked.
PIPE_ROWS void bwd_sums(const float* __restrict x, const float* __restrict dy, const float* __restrict mean, const float* __restrict mask, float* __restrict g_out,
                        long r0, long r1, long C, double* __restrict acc) {
  double* __restrict s0 = acc;
  double* __restrict s1 = acc + C;
  double* __restrict s2 = acc + 2 * C;
  double* __restrict s3 = acc + 3 * C;
  // The masked gradient of a row goes to g_out, or to a row buffer: a select inside the
  // summing loop kept it from vectorising (15 ns per element instead of 2.4, measured).
  std::vector<float> row(mask && !g_out ? C : 0);
  for (long r = r0; r < r1; r++) {
    const float* __restrict xr = x + r * C;
    const float* __restrict dyr = dy + r * C;
    if (mask || g_out) {
      float* __restrict gr = g_out ? g_out + r * C : row.data();
      if (mask) {
        const float* __restrict yr = mask + r * C;
        for (long c = 0; c < C; c++) gr[c] = yr[c] > 0.f ? dyr[c] : 0.f;
      } else {
        for (long c = 0; c < C; c++) gr[c] = dyr[c];
      }
      dyr = gr;
    }
    for (long c = 0; c < C; c++) {
      const double g = dyr[c];
      const double xm = static_cast<double>(xr[c]) - mean[c];
      s0[c] += xm;
      s1[c] += xm * xm;
      s2[c] += g;
      s3[c] += g * xm;
    }
  }
}

// dx = a * g - k * (x - mu) - b per element in double, rounded once, for rows [r0, r1); g = the
// gradient masked by the ReLU (y > 0) when `mask` is given (through a row buffer, as above).
PIPE_ROWS void bwd_dx(const float* __restrict x, const float* __restrict g, const float* __restrict mask, const double* __restrict a, const double* __restrict k,
                      const double* __restrict mu, const double* __restrict b, float* __restrict dx, long r0, long r1, long C) {
  std::vector<float> row(mask ? C : 0);
  for (long r = r0; r < r1; r++) {
    const float* __restrict xr = x + r * C;
    const float* __restrict gr = g + r * C;
    float* __restrict dxr = dx + r * C;
    if (mask) {
      const float* __restrict yr = mask + r * C;
      for (long c = 0; c < C; c++) row[c] = yr[c] > 0.f ? gr[c] : 0.f;
      gr = row.data();
    }
    for (long c = 0; c < C; c++) dxr[c] = static_cast<float>(a[c] * gr[c] - k[c] * (xr[c] - mu[c]) - b[c]);
  }
}

}  // namespace

void bn_train_forward(const float* x, float* y, float* mean_out, float* var_out, const float* gamma, const float* beta, long rows, long C, double eps,
                      const float* residual, bool relu) {
  std::vector<double> s;
  row_blocks(rows, C, 2 * C, s, [&](long r0, long r1, double* acc) { fwd_sums(x, r0, r1, C, acc); });
  std::vector<double> scale(C), shift(C);
  for (long c = 0; c < C; c++) {
    const double mean = s[c] / rows, var = std::max(0.0, s[C + c] / rows - mean * mean);  // biased
    const double g = gamma[c] / std::sqrt(var + eps);
    scale[c] = g;
    shift[c] = beta[c] - mean * g;
    mean_out[c] = static_cast<float>(mean);
    var_out[c] = static_cast<float>(var);
  }
  // bn(x) = x * scale + shift in double, rounded once (float32 constants would put every element
  // of a channel off in the same direction, an error later sums do not average away).
  std::vector<double> none;
  row_blocks(rows, C, 0, none, [&](long r0, long r1, double*) { fwd_y(x, y, scale.data(), shift.data(), residual, relu, r0, r1, C); });
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
  row_blocks(rows, C, 4 * C, s, [&](long r0, long r1, double* acc) { bwd_sums(x, dy, mean, y_mask, g_out, r0, r1, C, acc); });
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
  std::vector<double> none;
  row_blocks(rows, C, 0, none, [&](long r0, long r1, double*) { bwd_dx(x, g_in, mask, a.data(), k.data(), mu.data(), b.data(), dx, r0, r1, C); });
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
