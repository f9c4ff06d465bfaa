// Shared declarations of pipe's native addon (see pipe_dnnl.cc for the JS-facing exports).
// Every operand is a float32 array inside the wasm heap `heap` (heap_len bytes), given by its
// byte offset; each entry point checks that its operands lie inside the heap and throws
// std::runtime_error otherwise (and for anything it does not support).
#pragma once
#include <cstddef>

// The supported oneDNN: 2.x (Debian 12 ships 2.6.3). conv.cc uses its v2 op-descriptor API
// (convolution_forward::desc -> primitive_desc), which oneDNN 3.0 removed. native/install.mjs
// says the same before building; this stops a build started some other way.
#include "oneapi/dnnl/dnnl_version.h"
#if DNNL_VERSION_MAJOR != 2
#error "pipe's native addon needs oneDNN 2.x (its v2 op-descriptor API; oneDNN 3.0 removed it), and this oneDNN is another major version: install oneDNN 2.x (Debian 12: apt-get install libdnnl-dev) or use the wasm kernels"
#endif

namespace pipe_native {

// Convolution, NHWC activations, HWIO filters. kind 0 forward, 1 backward data, 2 backward
// weights. p (26 numbers):
//   [N, H, W, C, KH, KW, O, OH, OW, SH, SW, PT, PL, PB, PR, xOff, wOff, yOff, biasOff, act, alpha,
//    KHfull, KWfull, A0, B0, filterId]
// KH x KW is the window of the filter (KHfull x KWfull, stored whole at wOff) that is used,
// starting at tap (A0, B0): taps that only ever meet padding are left out by the caller. For
// backward weights the taps outside the window are set to zero. filterId (>= 0; -1: none) names
// the filter's data for the forward pass: its reordered copy is kept and reused while the same id
// comes back (the caller guarantees that an id's data never changes).
// A forward conv may also add a residual r before its activation (oneDNN's sum post-op):
// y = act(conv(x, w) + bias + r), r of y's shape at byte offset `residual` (-1: none).
void conv(int kind, char* heap, size_t heap_len, const double* p, double residual = -1);

// Batched matrix product (see pipe_dnnl.cc). p (13 numbers).
void matmul(char* heap, size_t heap_len, const double* p);

// oneDNN's implementation name for a conv (kind 0-2) or matmul (kind 3) parameter set.
const char* impl_info(int kind, const double* p);

// out = a (op) b with broadcasting `mode`: 0 same size, 1 a is a scalar, 2 b is a scalar,
// 3 b repeats every `inner` elements (a per-channel vector), 4 a does. op: 0 add, 1 sub, 2 mul,
// 3 div. p = [op, mode, aOff, bOff, outOff, outSize, inner].
void binary(char* heap, size_t heap_len, const double* p);

// out = f(x), op: 0 sqrt, 1 square. p = [op, xOff, outOff, size].
void unary(char* heap, size_t heap_len, const double* p);

// Column reduction of x [rows, cols] (row-major) into out [cols]: op 0 sum, 1 mean.
// p = [op, xOff, outOff, rows, cols].
void reduce_rows(char* heap, size_t heap_len, const double* p);

// Max-pool gradient, NHWC, first maximum of each window wins (tfjs's rule).
// p = [N, H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, xOff, dyOff, dxOff].
void max_pool_grad(char* heap, size_t heap_len, const double* p);

// Batch normalisation with given statistics over the last axis of x (n values, C channels):
// out = offset + (x - mean) * scale / sqrt(variance + eps), per channel, computed in double.
// Parameter offsets < 0 mean absent (offset 0, scale 1); each parameter has 1 or C values.
// p = [xOff, outOff, n, C, meanOff, varOff, offsetOff, scaleOff, eps, meanN, varN, offsetN, scaleN].
void batch_norm(char* heap, size_t heap_len, const double* p);

// Training-mode batch normalisation over the last axis of x (rows x C, NHWC), in closed form
// (batch_norm_train.cc): y = (x - mean) * gamma / sqrt(var + eps) + beta with the batch's mean
// and biased variance, which are written out too (for the running statistics).
// p = [xOff, yOff, meanOff, varOff, gammaOff, betaOff, rows, C, eps].
void batch_norm_train(char* heap, size_t heap_len, const double* p);

// Its gradient: dx, dgamma = sum(dy * xhat), dbeta = sum(dy), from x, dy and the forward's mean
// and biased variance. p = [xOff, dyOff, meanOff, varOff, gammaOff, dxOff, dgammaOff, dbetaOff, rows, C, eps].
void batch_norm_train_grad(char* heap, size_t heap_len, const double* p);

// Pointer-level cores of the two above, shared with conv_bn.cc. The forward optionally adds a
// residual (same shape as x) to the normalised value and applies a ReLU:
// y = max(0, bn(x) + residual), each float32 operation rounded as the separate ops round it.
// The backward optionally first applies the ReLU's gradient (dy where y_mask > 0, else 0),
// writing that masked dy to g_out when g_out is given (the residual's gradient).
// The backward reads the forward's float32 mean only as the centre of its sums, from which it
// recovers the batch statistics in double; var is not read.
void bn_train_forward(const float* x, float* y, float* mean_out, float* var_out, const float* gamma, const float* beta, long rows, long C, double eps,
                      const float* residual, bool relu);
void bn_train_backward(const float* x, const float* dy, const float* mean, const float* var, const float* gamma, float* dx, float* dgamma, float* dbeta, long rows,
                       long C, double eps, const float* y_mask, float* g_out);

// Conv + training-mode BatchNorm (+ residual) (+ ReLU), forward (conv_bn.cc). p (34 numbers): the
// conv's 26 (x at p[15], filter p[16], the conv output z at p[17], no bias), then
// [yOff, meanOff, varOff, gammaOff, betaOff, residualOff (-1 none), relu (0/1), eps].
void conv_bn_train(char* heap, size_t heap_len, const double* p);

// Its backward but the input gradient: p (38 numbers): the conv's 26 (x at p[15], filter p[16],
// dz written at p[17]), then [zOff, yOff, dyOff, meanOff, varOff, gammaOff, eps, relu,
// residualGradOff (-1 none), dwOff, dgammaOff, dbetaOff]. dz is the gradient at the conv output
// (the caller gets dx from it with a backward-data conv).
void conv_bn_train_grad(char* heap, size_t heap_len, const double* p);

// One Adam step (tfjs-core AdamOptimizer's float32 arithmetic, in its order) into new arrays:
// m' = m*b1 + g*c1, v' = v*b2 + (g*g)*c2, w' = ((m'/a1) / (sqrt(v'/a2) + eps)) * nlr + w, where
// c1 = 1 - b1, c2 = 1 - b2 (rounded to float32 by the caller), a1 = 1 - b1^t and a2 = 1 - b2^t
// are read from the heap (float32 scalars), nlr = -lr.
// p = [wOff, gOff, mOff, vOff, newWOff, newMOff, newVOff, n, a1Off, a2Off, b1, c1, b2, c2, eps, nlr].
void adam(char* heap, size_t heap_len, const double* p);

// Throws unless [off, off + floats * 4) lies inside the heap.
void check_range(double off, double floats, size_t heap_len, const char* what);

}  // namespace pipe_native
