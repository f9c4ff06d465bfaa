// Convolutions and matrix products through oneDNN (https://github.com/oneapi-src/oneDNN, v2.x
// API: op desc -> primitive_desc -> primitive). Activations are NHWC (oneDNN tag nhwc), filters
// HWIO (tag hwio, or a strided window of it); filters are reordered to the layout oneDNN picks
// (`any`): the forward conv keeps the reordered filter per tensor id (forward_filter; a weight
// update makes a new tensor, so a stale copy is never used), the other ops reorder on each call.
// Primitives are cached by shape. Strided 1x1 filter gradients bypass oneDNN (conv_bwd_weights_1x1_strided: its kernel
// for them is broken in 2.x). Reference semantics: TensorFlow's Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter
// and BatchMatMul, as tfjs implements them.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "native.h"
#include "oneapi/dnnl/dnnl.hpp"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace pipe_native {
namespace {

engine& eng() {
  static engine e(engine::kind::cpu, 0);
  return e;
}
stream& strm() {
  static stream s(eng());
  return s;
}

// Filters already reordered for a forward conv, by the wasm tensor id of their source (tfjs
// tensor data never changes while its id lives: a variable's assign makes a new tensor). A
// filter is kept from its second use on (inference reuses filters; training makes new ones every
// step and so keeps none), at most kFilterCache per conv shape, most recent last.
constexpr size_t kFilterCache = 8;
constexpr size_t kSeenIds = 32;

struct ConvEntry {
  primitive prim;
  memory::desc x_md, w_user_md, w_md, y_md, bias_md;
  bool w_reorder = false;
  std::unique_ptr<memory> w_buf;  // the filter (or its gradient) in oneDNN's layout
  primitive to_blocked, from_blocked;  // reorders user <-> oneDNN layout
  std::vector<std::pair<double, std::unique_ptr<memory>>> filters;  // forward only, see kFilterCache
  std::vector<double> seen;  // ids used once, not kept yet
  std::string impl;
};

// The forward conv's filter in oneDNN's layout: cached for tensor `id` (>= 0), else reordered
// into the entry's scratch buffer.
memory& forward_filter(ConvEntry* e, memory& w_user, double id) {
  if (id < 0) {
    e->to_blocked.execute(strm(), {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, *e->w_buf}});
    return *e->w_buf;
  }
  for (size_t i = 0; i < e->filters.size(); i++) {
    if (e->filters[i].first != id) continue;
    std::rotate(e->filters.begin() + i, e->filters.begin() + i + 1, e->filters.end());
    return *e->filters.back().second;
  }
  const auto once = std::find(e->seen.begin(), e->seen.end(), id);
  if (once == e->seen.end()) {
    if (e->seen.size() >= kSeenIds) e->seen.erase(e->seen.begin());
    e->seen.push_back(id);
    return forward_filter(e, w_user, -1);
  }
  e->seen.erase(once);
  std::unique_ptr<memory> buf;
  if (e->filters.size() >= kFilterCache) {
    buf = std::move(e->filters.front().second);
    e->filters.erase(e->filters.begin());
  } else {
    buf = std::make_unique<memory>(e->w_md, eng());
  }
  e->to_blocked.execute(strm(), {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, *buf}});
  e->filters.emplace_back(id, std::move(buf));
  return *e->filters.back().second;
}

struct MatmulEntry {
  primitive prim;
  memory::desc a_md, b_md, c_md, bias_md;
  std::string impl;
};

std::map<std::vector<double>, std::unique_ptr<ConvEntry>> conv_cache;
std::map<std::vector<double>, std::unique_ptr<MatmulEntry>> matmul_cache;

// The activation `act` (native.h) after the conv or matmul, preceded by a sum with the
// destination's previous contents when `sum` (the residual of conv()).
primitive_attr post_ops_attr(int act, float alpha, bool sum = false) {
  primitive_attr attr;
  post_ops ops;
  if (sum) ops.append_sum(1.f);
  switch (act) {
    case 0: break;
    case 1: ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f); break;
    case 2: ops.append_eltwise(1.f, algorithm::eltwise_clip, 0.f, 6.f); break;
    case 3: ops.append_eltwise(1.f, algorithm::eltwise_relu, alpha, 0.f); break;
    case 4: ops.append_eltwise(1.f, algorithm::eltwise_logistic, 0.f, 0.f); break;
    case 5: ops.append_eltwise(1.f, algorithm::eltwise_elu, 1.f, 0.f); break;
    default: throw std::runtime_error("unsupported activation");
  }
  attr.set_post_ops(ops);
  return attr;
}

ConvEntry* conv_entry(int kind, const double* p, bool sum = false) {
  std::vector<double> key(p, p + 15);
  key.insert(key.end(), {static_cast<double>(kind), p[18] >= 0 ? 1.0 : 0.0, p[19], p[20], p[21], p[22], sum ? 1.0 : 0.0});
  auto it = conv_cache.find(key);
  if (it != conv_cache.end()) return it->second.get();
  const memory::dim N = p[0], H = p[1], W = p[2], C = p[3], KH = p[4], KW = p[5], O = p[6], OH = p[7], OW = p[8];
  const memory::dim KWfull = p[22];
  const memory::dims strides = {(memory::dim)p[9], (memory::dim)p[10]};
  const memory::dims pad_l = {(memory::dim)p[11], (memory::dim)p[12]};
  const memory::dims pad_r = {(memory::dim)p[13], (memory::dim)p[14]};
  auto e = std::make_unique<ConvEntry>();
  e->x_md = memory::desc({N, C, H, W}, dt::f32, tag::nhwc);
  e->y_md = memory::desc({N, O, OH, OW}, dt::f32, tag::nhwc);
  // HWIO strides of the full filter, so that a window of taps needs no copy.
  e->w_user_md = memory::desc({O, C, KH, KW}, dt::f32, memory::dims{1, O, KWfull * C * O, C * O});
  const memory::desc w_any({O, C, KH, KW}, dt::f32, tag::any);
  if (p[18] >= 0) e->bias_md = memory::desc({O}, dt::f32, tag::x);
  const prop_kind pk = kind == 0 ? prop_kind::forward_inference : prop_kind::forward_training;
  convolution_forward::desc fd(pk, algorithm::convolution_direct, e->x_md, w_any, e->bias_md, e->y_md, strides, pad_l, pad_r);
  if (kind == 0) {
    convolution_forward::primitive_desc pd(fd, post_ops_attr((int)p[19], (float)p[20], sum), eng());
    e->w_md = pd.weights_desc();
    e->prim = convolution_forward(pd);
    e->impl = pd.impl_info_str();
  } else {
    convolution_forward::primitive_desc hint(fd, eng());
    if (kind == 1) {
      convolution_backward_data::desc bd(algorithm::convolution_direct, e->x_md, w_any, e->y_md, strides, pad_l, pad_r);
      convolution_backward_data::primitive_desc pd(bd, eng(), hint);
      e->w_md = pd.weights_desc();
      e->prim = convolution_backward_data(pd);
      e->impl = pd.impl_info_str();
    } else {
      convolution_backward_weights::desc bd(algorithm::convolution_direct, e->x_md, w_any, e->y_md, strides, pad_l, pad_r);
      convolution_backward_weights::primitive_desc pd(bd, eng(), hint);
      e->w_md = pd.diff_weights_desc();
      e->prim = convolution_backward_weights(pd);
      e->impl = pd.impl_info_str();
    }
  }
  e->w_reorder = e->w_md != e->w_user_md;
  if (e->w_reorder) {
    e->w_buf = std::make_unique<memory>(e->w_md, eng());
    e->to_blocked = reorder(reorder::primitive_desc(eng(), e->w_user_md, eng(), e->w_md));
    e->from_blocked = reorder(reorder::primitive_desc(eng(), e->w_md, eng(), e->w_user_md));
  }
  ConvEntry* raw = e.get();
  conv_cache.emplace(std::move(key), std::move(e));
  return raw;
}

MatmulEntry* matmul_entry(const double* p) {
  std::vector<double> key = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[10] >= 0 ? 1.0 : 0.0, p[11], p[12]};
  auto it = matmul_cache.find(key);
  if (it != matmul_cache.end()) return it->second.get();
  const memory::dim BA = p[0], BB = p[1], M = p[2], K = p[3], N = p[4];
  const bool ta = p[5] != 0, tb = p[6] != 0;
  auto e = std::make_unique<MatmulEntry>();
  // Transposed operands are described by their strides: no copy.
  e->a_md = memory::desc({BA, M, K}, dt::f32, ta ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
  e->b_md = memory::desc({BB, K, N}, dt::f32, tb ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
  e->c_md = memory::desc({BA > BB ? BA : BB, M, N}, dt::f32, tag::abc);
  if (p[10] >= 0) e->bias_md = memory::desc({1, 1, N}, dt::f32, tag::abc);
  dnnl::matmul::desc d(e->a_md, e->b_md, e->bias_md, e->c_md);
  dnnl::matmul::primitive_desc pd(d, post_ops_attr((int)p[11], (float)p[12]), eng());
  e->prim = dnnl::matmul(pd);
  e->impl = pd.impl_info_str();
  MatmulEntry* raw = e.get();
  matmul_cache.emplace(std::move(key), std::move(e));
  return raw;
}

// Input gradient of a convolution with few input channels (an RGB stem) as a matrix product and
// a scatter (col2im): cols[n,i,j][a,b,c] = sum_o dy[n,i,j,o] * W[a,b,c,o], then
// dx[n, i*SH + a - PT, j*SW + b - PL, c] += cols[n,i,j][a,b,c]. oneDNN's direct backward-data
// kernels are several times slower than the forward conv when C is 3.
void conv_bwd_data_col2im(char* heap, const double* p) {
  const long N = p[0], H = p[1], W = p[2], C = p[3], KH = p[4], KW = p[5], O = p[6], OH = p[7], OW = p[8];
  const long SH = p[9], SW = p[10], PT = p[11], PL = p[12];
  const long rows = N * OH * OW, cols_n = KH * KW * C;
  const double mp[13] = {1, 1, static_cast<double>(rows), static_cast<double>(O), static_cast<double>(cols_n), 0, 1, 0, 0, 0, -1, 0, 0};
  MatmulEntry* e = matmul_entry(mp);
  std::vector<float> cols(static_cast<size_t>(rows * cols_n));
  auto at = [&](double off) { return static_cast<void*>(heap + static_cast<size_t>(off)); };
  e->prim.execute(strm(), {{DNNL_ARG_SRC, memory(e->a_md, eng(), at(p[17]))},
                           {DNNL_ARG_WEIGHTS, memory(e->b_md, eng(), at(p[16]))},
                           {DNNL_ARG_DST, memory(e->c_md, eng(), cols.data())}});
  strm().wait();
  float* dx = static_cast<float*>(at(p[15]));
  std::memset(dx, 0, static_cast<size_t>(N * H * W * C) * 4);
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++) {
    for (long i = 0; i < OH; i++) {
      for (long j = 0; j < OW; j++) {
        const float* src = cols.data() + ((n * OH + i) * OW + j) * cols_n;
        for (long a = 0; a < KH; a++) {
          const long h = i * SH + a - PT;
          if (h < 0 || h >= H) continue;
          for (long b = 0; b < KW; b++) {
            const long w = j * SW + b - PL;
            if (w < 0 || w >= W) continue;
            float* d = dx + ((n * H + h) * W + w) * C;
            const float* s = src + (a * KW + b) * C;
            for (long c = 0; c < C; c++) d[c] += s[c];
          }
        }
      }
    }
  }
}

// Filter gradient of a strided 1x1 convolution (ResNet's downsample shortcut) as a gather and
// one matrix product: xs[n,i,j][c] = x[n, i*SH - PT, j*SW - PL, c] (zero where that is padding),
// then dW[c][o] = sum over (n,i,j) of xs[n,i,j][c] * dy[n,i,j][o], written into the filter's
// live 1x1 window (the rest of the filter is zeroed). It replaces oneDNN 2.x's jit_1x1
// backward-weights kernels for every strided 1x1 conv: with NHWC activations, a stride > 1 and
// fewer input channels than their channel block (8 on AVX2, 16 on AVX-512) they write past
// their per-thread "reduce to unit stride" (rtus) workspace, which gives wrong filter gradients,
// hangs or crashes depending on thread timing (https://github.com/uxlfoundation/oneDNN/issues/6035;
// seen here as a relative dW error of 0.89 on a [2, 8, 8, 4] input).
// Multiply-adds below which conv_bwd_weights_1x1_strided's product runs on one thread.
constexpr double kSmallProduct = 1 << 23;

void conv_bwd_weights_1x1_strided(char* heap, const double* p) {
  const long N = p[0], H = p[1], W = p[2], C = p[3], O = p[6], OH = p[7], OW = p[8];
  const long SH = p[9], SW = p[10], PT = p[11], PL = p[12];
  const long rows = N * OH * OW;
  std::vector<float> xs(static_cast<size_t>(rows * C));
  auto at = [&](double off) { return heap + static_cast<size_t>(off); };
  const float* x = reinterpret_cast<const float*>(at(p[15]));
#pragma omp parallel for schedule(static)
  for (long ni = 0; ni < N * OH; ni++) {
    const long n = ni / OH, i = ni % OH, h = i * SH - PT;
    for (long j = 0; j < OW; j++) {
      float* d = xs.data() + (ni * OW + j) * C;
      const long w = j * SW - PL;
      if (h < 0 || h >= H || w < 0 || w >= W) {
        std::memset(d, 0, static_cast<size_t>(C) * 4);
      } else {
        std::memcpy(d, x + ((n * H + h) * W + w) * C, static_cast<size_t>(C) * 4);
      }
    }
  }
  // a = xs^T [C, rows] (xs stored [rows, C]), b = dy [rows, O], c = dW window [C, O].
  const double mp[13] = {1, 1, static_cast<double>(C), static_cast<double>(rows), static_cast<double>(O), 1, 0, 0, 0, 0, -1, 0, 0};
  MatmulEntry* e = matmul_entry(mp);
  const double filter_floats = p[21] * p[22] * p[3] * p[6];
  if (p[21] != 1 || p[22] != 1) std::memset(at(p[16]), 0, static_cast<size_t>(filter_floats) * 4);
  const double window = (p[23] * p[22] + p[24]) * p[3] * p[6] * 4;  // byte offset of tap (A0, B0)
  // A small product runs on one thread: oneDNN's gemm splits its long reduction (rows) across
  // threads, and on a busy machine waiting for the second thread's time slice costs 20x the
  // product itself (measured: 0.15 ms on 1 thread, 3-5 ms on 2 for 32 x 1024 x 64).
  struct Threads {  // restores the thread count however the call ends
    const int saved = omp_get_max_threads();
    ~Threads() { omp_set_num_threads(saved); }
  } restore;
  if (static_cast<double>(C) * rows * O < kSmallProduct) omp_set_num_threads(1);
  e->prim.execute(strm(), {{DNNL_ARG_SRC, memory(e->a_md, eng(), xs.data())},
                           {DNNL_ARG_WEIGHTS, memory(e->b_md, eng(), at(p[17]))},
                           {DNNL_ARG_DST, memory(e->c_md, eng(), at(p[16] + window))}});
  strm().wait();
}

// True for the parameter sets conv_bwd_weights_1x1_strided takes (see there why).
bool strided_1x1(int kind, const double* p) { return kind == 2 && p[4] == 1 && p[5] == 1 && (p[9] > 1 || p[10] > 1); }

}  // namespace

void check_range(double off, double floats, size_t heap_len, const char* what) {
  if (off < 0 || off + floats * 4 > static_cast<double>(heap_len)) throw std::runtime_error(std::string(what) + " is outside the wasm heap");
}

void conv(int kind, char* heap, size_t heap_len, const double* p, double residual) {
  const double filter_floats = p[21] * p[22] * p[3] * p[6];
  check_range(p[15], p[0] * p[1] * p[2] * p[3], heap_len, "x");
  check_range(p[16], filter_floats, heap_len, "filter");
  check_range(p[17], p[0] * p[7] * p[8] * p[6], heap_len, "y");
  if (p[18] >= 0) check_range(p[18], p[6], heap_len, "bias");
  if (p[23] < 0 || p[24] < 0 || p[23] + p[4] > p[21] || p[24] + p[5] > p[22]) throw std::runtime_error("filter window outside the filter");
  const bool sum = kind == 0 && residual >= 0;
  if (sum) check_range(residual, p[0] * p[7] * p[8] * p[6], heap_len, "residual");
  if (kind == 1 && p[3] <= 4 && p[4] == p[21] && p[5] == p[22]) {
    conv_bwd_data_col2im(heap, p);
    return;
  }
  if (strided_1x1(kind, p)) {
    conv_bwd_weights_1x1_strided(heap, p);
    return;
  }
  ConvEntry* e = conv_entry(kind, p, sum);
  auto at = [&](double off) { return static_cast<void*>(heap + static_cast<size_t>(off)); };
  const double window = (p[23] * p[22] + p[24]) * p[3] * p[6] * 4;  // byte offset of tap (A0, B0)
  memory x(e->x_md, eng(), at(p[15]));
  memory w_user(e->w_user_md, eng(), at(p[16] + window));
  memory y(e->y_md, eng(), at(p[17]));
  memory* wp = &w_user;
  if (e->w_reorder && kind == 0) wp = &forward_filter(e, w_user, p[25]);
  if (e->w_reorder && kind == 1) {
    e->to_blocked.execute(strm(), {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, *e->w_buf}});
    wp = e->w_buf.get();
  }
  if (e->w_reorder && kind == 2) wp = e->w_buf.get();
  memory& w = *wp;
  if (sum && residual != p[17]) std::memmove(at(p[17]), at(residual), static_cast<size_t>(p[0] * p[7] * p[8] * p[6]) * 4);
  if (kind == 0) {
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}};
    if (p[18] >= 0) args.insert({DNNL_ARG_BIAS, memory(e->bias_md, eng(), at(p[18]))});
    e->prim.execute(strm(), args);
  } else if (kind == 1) {
    e->prim.execute(strm(), {{DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, x}});
  } else {
    if (p[4] != p[21] || p[5] != p[22]) std::memset(at(p[16]), 0, static_cast<size_t>(filter_floats) * 4);
    e->prim.execute(strm(), {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, y}, {DNNL_ARG_DIFF_WEIGHTS, w}});
    if (e->w_reorder) e->from_blocked.execute(strm(), {{DNNL_ARG_FROM, w}, {DNNL_ARG_TO, w_user}});
  }
  strm().wait();
}

void matmul(char* heap, size_t heap_len, const double* p) {
  const double batch = p[0] > p[1] ? p[0] : p[1];
  check_range(p[7], p[0] * p[2] * p[3], heap_len, "a");
  check_range(p[8], p[1] * p[3] * p[4], heap_len, "b");
  check_range(p[9], batch * p[2] * p[4], heap_len, "c");
  if (p[10] >= 0) check_range(p[10], p[4], heap_len, "bias");
  MatmulEntry* e = matmul_entry(p);
  auto at = [&](double off) { return static_cast<void*>(heap + static_cast<size_t>(off)); };
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(e->a_md, eng(), at(p[7]))},
      {DNNL_ARG_WEIGHTS, memory(e->b_md, eng(), at(p[8]))},
      {DNNL_ARG_DST, memory(e->c_md, eng(), at(p[9]))}};
  if (p[10] >= 0) args.insert({DNNL_ARG_BIAS, memory(e->bias_md, eng(), at(p[10]))});
  e->prim.execute(strm(), args);
  strm().wait();
}

const char* impl_info(int kind, const double* p) {
  if (strided_1x1(kind, p)) {
    static std::string s;
    const double mp[13] = {1, 1, p[3], p[0] * p[7] * p[8], p[6], 1, 0, 0, 0, 0, -1, 0, 0};
    s = std::string("pipe gather+matmul (") + matmul_entry(mp)->impl + ")";
    return s.c_str();
  }
  return kind == 3 ? matmul_entry(p)->impl.c_str() : conv_entry(kind, p)->impl.c_str();
}

}  // namespace pipe_native
