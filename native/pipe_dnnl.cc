// pipe_dnnl: an N-API addon that runs the heavy ops of tfjs's wasm backend natively, on every
// core: convolutions and matrix products through oneDNN (the library PyTorch uses for them on
// CPU); element-wise ops, column reductions, the max-pool gradient and a fused Adam step through
// OpenMP loops.
// Operands live in the wasm heap (the WebAssembly.Memory's ArrayBuffer) and are read and written
// in place; the JS side (src/engine/native/*-kernels.ts) allocates outputs there first. Built by
// binding.gyp (see native/install.mjs).
//
// Exports (synchronous; `heap` an ArrayBuffer, `p` a Float64Array laid out as native.h says):
//   conv(kind, heap, p [, residual in p[26]])  matmul(heap, p)  binary(heap, p)  unary(heap, p)
//   reduceRows(heap, p)  maxPoolGrad(heap, p)  batchNorm(heap, p)  batchNormTrain(heap, p)
//   batchNormTrainGrad(heap, p)  convBnTrain(heap, p)  convBnTrainGrad(heap, p)  adam(heap, p)  implInfo(kind, p) -> string
//   setThreads(n)  threads() -> number
// A failure (unsupported shape, an operand outside the heap, a oneDNN error) throws a JS Error
// with code PIPE_NATIVE; the JS side then falls back to the wasm kernel.
#include <node_api.h>
#include <omp.h>

#include <exception>
#include <mutex>
#include <string>

#include "native.h"

namespace {

// One call at a time: the primitive caches and filter scratch buffers are shared. (Each call
// runs on every core itself; worker threads that load the addon take turns.)
std::mutex call_mutex;

napi_value throw_error(napi_env env, const char* msg) {
  napi_throw_error(env, "PIPE_NATIVE", msg);
  return nullptr;
}

bool read_params(napi_env env, napi_value v, const double** p, size_t* n) {
  napi_typedarray_type type;
  napi_value ab;
  size_t off = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, n, &data, &ab, &off) != napi_ok || type != napi_float64_array) return false;
  *p = static_cast<const double*>(data);
  return true;
}

bool read_heap(napi_env env, napi_value v, char** heap, size_t* len) {
  void* data = nullptr;
  if (napi_get_arraybuffer_info(env, v, &data, len) != napi_ok) return false;
  *heap = static_cast<char*>(data);
  return true;
}

using HeapOp = void (*)(char*, size_t, const double*);

// (heap, params) entry points with a fixed parameter count.
template <HeapOp op, size_t count>
napi_value heap_call(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char* heap;
  size_t len, n;
  const double* p;
  if (argc != 2 || !read_heap(env, argv[0], &heap, &len) || !read_params(env, argv[1], &p, &n) || n != count) {
    return throw_error(env, ("expected (ArrayBuffer, Float64Array(" + std::to_string(count) + "))").c_str());
  }
  try {
    std::lock_guard<std::mutex> lock(call_mutex);
    op(heap, len, p);
  } catch (const std::exception& ex) {
    return throw_error(env, ex.what());
  }
  return nullptr;
}

napi_value Conv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t kind = -1;
  char* heap;
  size_t len, n;
  const double* p;
  if (argc != 3 || napi_get_value_int32(env, argv[0], &kind) != napi_ok || kind < 0 || kind > 2 || !read_heap(env, argv[1], &heap, &len) ||
      !read_params(env, argv[2], &p, &n) || (n != 26 && !(n == 27 && kind == 0))) {
    return throw_error(env, "conv: expected (kind 0-2, ArrayBuffer, Float64Array(26), or 27 for a forward conv with a residual)");
  }
  try {
    std::lock_guard<std::mutex> lock(call_mutex);
    pipe_native::conv(kind, heap, len, p, n == 27 ? p[26] : -1);
  } catch (const std::exception& ex) {
    return throw_error(env, ex.what());
  }
  return nullptr;
}

napi_value ImplInfo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t kind = -1;
  size_t n;
  const double* p;
  if (argc != 2 || napi_get_value_int32(env, argv[0], &kind) != napi_ok || kind < 0 || kind > 3 || !read_params(env, argv[1], &p, &n) || n != (kind == 3 ? 13u : 26u)) {
    return throw_error(env, "implInfo: expected (kind 0-3, Float64Array(26 or 13))");
  }
  try {
    std::lock_guard<std::mutex> lock(call_mutex);
    const char* s = pipe_native::impl_info(kind, p);
    napi_value out;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
    return out;
  } catch (const std::exception& ex) {
    return throw_error(env, ex.what());
  }
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) return throw_error(env, "setThreads(n >= 1)");
  omp_set_num_threads(n);
  return nullptr;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, omp_get_max_threads(), &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv", nullptr, Conv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, heap_call<pipe_native::matmul, 13>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, heap_call<pipe_native::binary, 7>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unary", nullptr, heap_call<pipe_native::unary, 4>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceRows", nullptr, heap_call<pipe_native::reduce_rows, 5>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, heap_call<pipe_native::max_pool_grad, 15>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, heap_call<pipe_native::batch_norm, 13>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrain", nullptr, heap_call<pipe_native::batch_norm_train, 9>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrainGrad", nullptr, heap_call<pipe_native::batch_norm_train_grad, 11>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBnTrain", nullptr, heap_call<pipe_native::conv_bn_train, 34>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBnTrainGrad", nullptr, heap_call<pipe_native::conv_bn_train_grad, 38>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, heap_call<pipe_native::adam, 16>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"implInfo", nullptr, ImplInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
