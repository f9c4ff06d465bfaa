// Convolution + training-mode BatchNorm (+ residual) (+ ReLU) as one call each way, so that a
// ResNet layer is one tfjs op forward and one (plus the input gradient's conv, only where the
// input needs a gradient) backward instead of ~8 (src/engine/native/conv-bn-train.ts):
//   forward:  z = conv(x, w);  y = act(bn(z) + r)   (bn with z's batch mean and biased variance)
//   backward: g = dy * (y > 0) (ReLU; g = dy without it); dr = g;  dz, dgamma, dbeta = bn'(z, g);
//             dw = conv_backward_weights(x, dz)   (dx = conv_backward_data(dz, w) is a separate op)
// Each step is the kernel the separate ops run (conv.cc, batch_norm_train.cc) with the same
// float32 arithmetic, so the fused op gives the separate ops' values bit for bit.
#include <stdexcept>
#include <vector>

#include "native.h"

namespace pipe_native {
namespace {

inline float* fptr(char* heap, double off) { return reinterpret_cast<float*>(heap + static_cast<size_t>(off)); }

}  // namespace

void conv_bn_train(char* heap, size_t heap_len, const double* p) {
  const long rows = static_cast<long>(p[0] * p[7] * p[8]), C = static_cast<long>(p[6]);
  if (rows < 1 || C < 1) throw std::runtime_error("conv_bn_train: empty output");
  check_range(p[26], static_cast<double>(rows) * C, heap_len, "y");
  for (int k = 27; k <= 30; k++) check_range(p[k], C, heap_len, "batch norm parameter");
  if (p[31] >= 0) check_range(p[31], static_cast<double>(rows) * C, heap_len, "residual");
  conv(0, heap, heap_len, p);  // z = conv(x, w), checks its own operands
  bn_train_forward(fptr(heap, p[17]), fptr(heap, p[26]), fptr(heap, p[27]), fptr(heap, p[28]), fptr(heap, p[29]), fptr(heap, p[30]), rows, C, p[33],
                   p[31] >= 0 ? fptr(heap, p[31]) : nullptr, p[32] != 0);
}

void conv_bn_train_grad(char* heap, size_t heap_len, const double* p) {
  const long rows = static_cast<long>(p[0] * p[7] * p[8]), C = static_cast<long>(p[6]);
  if (rows < 1 || C < 1) throw std::runtime_error("conv_bn_train_grad: empty output");
  const double n = static_cast<double>(rows) * C;
  check_range(p[17], n, heap_len, "dz");
  check_range(p[26], n, heap_len, "z");
  check_range(p[27], n, heap_len, "y");
  check_range(p[28], n, heap_len, "dy");
  for (int k = 29; k <= 31; k++) check_range(p[k], C, heap_len, "batch norm parameter");
  if (p[34] >= 0) check_range(p[34], n, heap_len, "residual gradient");
  check_range(p[36], C, heap_len, "dgamma");
  check_range(p[37], C, heap_len, "dbeta");
  bn_train_backward(fptr(heap, p[26]), fptr(heap, p[28]), fptr(heap, p[29]), fptr(heap, p[30]), fptr(heap, p[31]), fptr(heap, p[17]), fptr(heap, p[36]), fptr(heap, p[37]),
                    rows, C, p[32], p[33] != 0 ? fptr(heap, p[27]) : nullptr, p[34] >= 0 ? fptr(heap, p[34]) : nullptr);
  std::vector<double> q(p, p + 26);
  q[16] = p[35];  // the filter gradient's slot
  q[18] = -1;     // no bias
  q[25] = -1;
  conv(2, heap, heap_len, q.data());
}

}  // namespace pipe_native
