// The operator schemas of the kernel_fused library. Kernels are registered per device in the other
// files (TORCH_LIBRARY_IMPL; autograd.cpp for the Autograd key), fake kernels in kernel_fused_ops/*.py.
#include <Python.h>
#include <torch/library.h>

// `import kernel_fused_ops._C` loads this shared library, whose static initialisers register the
// operators; the module itself is empty (the operators are reached through torch.ops).
extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(kernel_fused, m) {
  // uint8 images, logical (N, H, W, C) with any strides, to float32 (N, C, H, W): (x / 255 - mean) / std,
  // samples where flip is true mirrored left to right
  m.def("image_batch(Tensor images, float[] mean, float[] std, Tensor? flip=None) -> Tensor");
  // the same from a list of (H, W, C) uint8 images of one size (no stacked copy)
  m.def("image_batch.list(Tensor[] images, float[] mean, float[] std, Tensor? flip=None) -> Tensor");
  // softmax cross-entropy of (N, C) scores and (N,) class indices, as F.cross_entropy; reduction is
  // ATen's (0 none, 1 mean, 2 sum). The second output is each row's logsumexp, kept for the backward.
  m.def("cross_entropy(Tensor logits, Tensor target, Tensor? weight, int ignore_index, float label_smoothing, "
        "int reduction) -> (Tensor, Tensor)");
  m.def("cross_entropy_backward(Tensor grad, Tensor logits, Tensor target, Tensor? weight, Tensor lse, "
        "int ignore_index, float label_smoothing, int reduction) -> Tensor");
  // gelu(x + bias) over the last dimension; approximate is "none" (erf) or "tanh"
  m.def("bias_gelu(Tensor x, Tensor bias, str approximate) -> Tensor");
  // gradients of x and of bias
  m.def("bias_gelu_backward(Tensor grad, Tensor x, Tensor bias, str approximate) -> (Tensor, Tensor)");
  // (N, L) token ids and a (N, L) padding mask (true at padding) to the (N, D) mean of weight's rows
  m.def("masked_mean_embedding(Tensor weight, Tensor indices, Tensor padding_mask) -> Tensor");
  // the gradient of weight, dense (num_weights, D)
  m.def("masked_mean_embedding_backward(Tensor grad, Tensor indices, Tensor padding_mask, SymInt num_weights) "
        "-> Tensor");
}
