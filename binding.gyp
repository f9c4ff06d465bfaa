# pipe's optional native addon (native/*.cc): oneDNN 2.x convolutions and matMuls plus OpenMP
# element-wise kernels for tfjs's wasm backend. Built by `npm ci` / `npm install` through
# native/install.mjs (which checks g++ and oneDNN first, so that a missing one never fails the
# install), or by `npm run build:native`. Debian: apt-get install -y g++ libdnnl-dev.
# No -march flags: the addon runs on any x86-64; oneDNN picks AVX2/AVX-512 code at run time.
{
  "targets": [
    {
      "target_name": "pipe_dnnl",
      "sources": ["native/pipe_dnnl.cc", "native/conv.cc", "native/pointwise.cc", "native/batch_norm_train.cc", "native/conv_bn.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fopenmp"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"]
    }
  ]
}
