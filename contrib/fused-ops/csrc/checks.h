// Argument checks and per-call constants shared by the CPU (*.cpp) and CUDA (cuda/*.cu) kernels, so
// both reject the same inputs with the same messages and round the same constants the same way.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace kernel_fused {

// image_batch: (x / 255 - mean) / std as one multiply-add per element, x * scale[c] + shift[c], with
// scale and shift computed in double and rounded once (one FMA then stays within a few ulp of the
// reference's three roundings). mean and std: one value per channel, or one for all.
struct ChannelAffine {
  std::vector<float> scale, shift;
};

inline ChannelAffine channel_affine(c10::ArrayRef<double> mean, c10::ArrayRef<double> std, int64_t channels) {
  TORCH_CHECK(mean.size() == 1 || static_cast<int64_t>(mean.size()) == channels,
              "image_batch: mean must have one value per channel (", channels, ") or a single value, got ",
              mean.size());
  TORCH_CHECK(std.size() == 1 || static_cast<int64_t>(std.size()) == channels,
              "image_batch: std must have one value per channel (", channels, ") or a single value, got ",
              std.size());
  ChannelAffine affine;
  for (int64_t c = 0; c < channels; ++c) {
    const double m = mean[mean.size() == 1 ? 0 : c], s = std[std.size() == 1 ? 0 : c];
    TORCH_CHECK(s != 0.0, "image_batch: std must be nonzero, got std[", c, "] = 0");
    affine.scale.push_back(static_cast<float>(1.0 / (255.0 * s)));
    affine.shift.push_back(static_cast<float>(-m / s));
  }
  return affine;
}

// cross_entropy (and its backward): (N, C) float scores and (N,) int64 class indices on one device,
// label_smoothing in [0, 1], reduction one of at::Reduction's 0 (none), 1 (mean), 2 (sum).
inline void check_cross_entropy(const at::Tensor& logits, const at::Tensor& target, double label_smoothing,
                                int64_t reduction) {
  TORCH_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.dim(), " dimensions");
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble,
              "cross_entropy: logits must be float32 or float64, got ", logits.scalar_type());
  const int64_t N = logits.size(0);
  TORCH_CHECK(target.dim() == 1 && target.size(0) == N, "cross_entropy: target must be (N,) = (", N,
              ",) class indices, got shape ", target.sizes());
  TORCH_CHECK(target.scalar_type() == at::kLong, "cross_entropy: target must be int64, got ", target.scalar_type());
  TORCH_CHECK(target.device() == logits.device(), "cross_entropy: target is on ", target.device(),
              ", logits on ", logits.device());
  TORCH_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
              "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  TORCH_CHECK(reduction >= 0 && reduction <= 2,
              "cross_entropy: reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
}

// cross_entropy_backward: the saved logsumexp and the incoming gradient fit the logits.
inline void check_cross_entropy_backward(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& lse,
                                         int64_t reduction) {
  const int64_t N = logits.size(0);
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == N && lse.scalar_type() == logits.scalar_type(),
              "cross_entropy_backward: lse must be (N,) = (", N, ",) of the logits' dtype, got ", lse.sizes(), " ",
              lse.scalar_type());
  if (reduction == 0) {  // at::Reduction::None
    TORCH_CHECK(grad.dim() == 1 && grad.size(0) == N, "cross_entropy_backward: grad must be (N,) = (", N,
                ",) for reduction none, got shape ", grad.sizes());
  } else {
    TORCH_CHECK(grad.numel() == 1, "cross_entropy_backward: grad must be a scalar for a reduced loss, got shape ",
                grad.sizes());
  }
}

// masked_mean_embedding (and its backward): (N, L) int64 ids and a bool padding mask of that shape.
inline void check_tokens(const at::Tensor& indices, const at::Tensor& padding_mask, const char* op) {
  TORCH_CHECK(indices.dim() == 2, op, ": indices must be (N, L), got ", indices.dim(), " dimensions");
  TORCH_CHECK(indices.scalar_type() == at::kLong, op, ": indices must be int64, got ", indices.scalar_type());
  TORCH_CHECK(padding_mask.sizes() == indices.sizes(), op, ": padding_mask must have the shape of indices ",
              indices.sizes(), ", got ", padding_mask.sizes());
  TORCH_CHECK(padding_mask.scalar_type() == at::kBool, op, ": padding_mask must be bool, got ",
              padding_mask.scalar_type());
  TORCH_CHECK(indices.device() == padding_mask.device(), op, ": indices are on ", indices.device(),
              ", padding_mask on ", padding_mask.device());
}

}  // namespace kernel_fused
