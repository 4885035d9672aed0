// kernel_fused::image_batch (CPU): uint8 images, logical (N, H, W, C) with any strides, to normalised
// float32 (N, C, H, W), the flipped samples mirrored left to right, in one pass over memory.
//
// Every sample is read through its own strides, one output row (one h, one c) at a time: the two layouts
// that occur are both fast without a copy. NCHW memory (torch.stack of CHW tensors, then permuted) reads
// each row contiguously, a loop the compiler vectorises; NHWC memory (a camera/numpy batch) reads
// interleaved pixels, specialised below for dense 1-, 3- and 4-channel pixels. Any other layout goes
// through the generic strided loop, which touches memory in the same order a contiguous copy would.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "checks.h"

#include <algorithm>
#include <string>
#include <vector>

namespace {

// One sample's pixels: where it starts and its strides in elements (may be negative once flipped).
struct SampleView {
  const uint8_t* data;
  int64_t stride_h, stride_w, stride_c;
};

// The flip mask as one bool per sample (nullptr: none flipped).
at::Tensor checked_flip(const std::optional<at::Tensor>& flip, int64_t samples) {
  if (!flip.has_value()) return at::Tensor();
  TORCH_CHECK(flip->scalar_type() == at::kBool, "image_batch: flip must be a bool tensor, got ",
              flip->scalar_type());
  TORCH_CHECK(flip->dim() == 1 && flip->size(0) == samples, "image_batch: flip must have shape (", samples,
              ",), one value per image, got ", flip->sizes());
  TORCH_CHECK(flip->device().is_cpu(), "image_batch: flip must be on the CPU like the images, got ",
              flip->device());
  return flip->contiguous();
}

void check_image_dtype(const at::Tensor& image, const char* what) {
  TORCH_CHECK(image.scalar_type() == at::kByte, "image_batch: ", what, " must be uint8, got ", image.scalar_type());
  TORCH_CHECK(image.device().is_cpu(), "image_batch: ", what, " must be on the CPU, got ", image.device());
}

// Dense pixels of a compile-time channel count: the loop the compiler unrolls into shuffles.
template <int64_t C>
void interleaved_row(const uint8_t* __restrict in, int64_t step, float* __restrict out, int64_t plane,
                     int64_t width, const float* scale, const float* shift) {
  float s[C], b[C];
  for (int64_t c = 0; c < C; ++c) s[c] = scale[c], b[c] = shift[c];
  if (step == C) {
    for (int64_t w = 0; w < width; ++w)
      for (int64_t c = 0; c < C; ++c) out[c * plane + w] = static_cast<float>(in[w * C + c]) * s[c] + b[c];
  } else {  // step == -C: the mirrored sample, read from its last pixel back
    for (int64_t w = 0; w < width; ++w)
      for (int64_t c = 0; c < C; ++c) out[c * plane + w] = static_cast<float>(in[-w * C + c]) * s[c] + b[c];
  }
}

// One row (n, h) of one sample into its C output rows, which lie `plane` floats apart.
void convert_row(const uint8_t* in, int64_t step_w, int64_t step_c, float* out, int64_t plane, int64_t width,
                 int64_t channels, const float* scale, const float* shift) {
  if (step_c == 1 && (step_w == channels || step_w == -channels)) {
    switch (channels) {
      case 1: return interleaved_row<1>(in, step_w, out, plane, width, scale, shift);
      case 3: return interleaved_row<3>(in, step_w, out, plane, width, scale, shift);
      case 4: return interleaved_row<4>(in, step_w, out, plane, width, scale, shift);
      default: break;
    }
  }
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* __restrict src = in + c * step_c;
    float* __restrict dst = out + c * plane;
    const float s = scale[c], b = shift[c];
    if (step_w == 1) {  // NCHW memory: contiguous rows, vectorised
      for (int64_t w = 0; w < width; ++w) dst[w] = static_cast<float>(src[w]) * s + b;
    } else if (step_w == -1) {  // NCHW memory, mirrored
      for (int64_t w = 0; w < width; ++w) dst[w] = static_cast<float>(src[-w]) * s + b;
    } else {
      for (int64_t w = 0; w < width; ++w) dst[w] = static_cast<float>(src[w * step_w]) * s + b;
    }
  }
}

// The shared body of both overloads: samples[n] is image n, all (H, W, C).
at::Tensor normalise_samples(const std::vector<SampleView>& samples, int64_t height, int64_t width,
                             int64_t channels, c10::ArrayRef<double> mean, c10::ArrayRef<double> std,
                             const std::optional<at::Tensor>& flip) {
  const int64_t count = static_cast<int64_t>(samples.size());
  const kernel_fused::ChannelAffine affine = kernel_fused::channel_affine(mean, std, channels);
  const at::Tensor flips = checked_flip(flip, count);
  at::Tensor out = at::empty({count, channels, height, width}, at::TensorOptions().dtype(at::kFloat));
  if (out.numel() == 0) return out;

  const bool* flipped = flips.defined() ? flips.const_data_ptr<bool>() : nullptr;
  float* out_data = out.mutable_data_ptr<float>();
  const int64_t plane = height * width, row_elements = width * channels;
  // about 16K output floats per task: enough work to pay for waking a thread
  const int64_t grain = std::max<int64_t>(1, 16384 / row_elements);
  at::parallel_for(0, count * height, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / height, h = row % height;
      const SampleView& sample = samples[n];
      const uint8_t* in = sample.data + h * sample.stride_h;
      int64_t step_w = sample.stride_w;
      if (flipped != nullptr && flipped[n]) {
        in += (width - 1) * step_w;
        step_w = -step_w;
      }
      convert_row(in, step_w, sample.stride_c, out_data + n * channels * plane + h * width, plane, width, channels,
                  affine.scale.data(), affine.shift.data());
    }
  });
  return out;
}

// A dimension of size 1 is never stepped over: give it the stride a fast path looks for.
int64_t effective_stride(const at::Tensor& t, int64_t dim, int64_t preferred) {
  return t.size(dim) == 1 ? preferred : t.stride(dim);
}

at::Tensor image_batch_cpu(const at::Tensor& images, c10::ArrayRef<double> mean, c10::ArrayRef<double> std,
                           const std::optional<at::Tensor>& flip) {
  check_image_dtype(images, "images");
  TORCH_CHECK(images.dim() == 4, "image_batch: images must have 4 dimensions (N, H, W, C), got shape ",
              images.sizes());
  const int64_t count = images.size(0), height = images.size(1), width = images.size(2), channels = images.size(3);
  const int64_t stride_c = effective_stride(images, 3, 1);
  const int64_t stride_w = effective_stride(images, 2, stride_c == 1 ? channels : 1);
  const uint8_t* base = images.const_data_ptr<uint8_t>();
  std::vector<SampleView> samples(count);
  for (int64_t n = 0; n < count; ++n)
    samples[n] = {base + n * images.stride(0), images.stride(1), stride_w, stride_c};
  return normalise_samples(samples, height, width, channels, mean, std, flip);
}

at::Tensor image_batch_list_cpu(at::TensorList images, c10::ArrayRef<double> mean, c10::ArrayRef<double> std,
                                const std::optional<at::Tensor>& flip) {
  if (images.empty()) {  // nothing to take a size from: (0, C, 0, 0), as the reference's empty stack
    const int64_t channels = static_cast<int64_t>(std::max(mean.size(), std.size()));
    return normalise_samples({}, 0, 0, channels, mean, std, flip);
  }
  const at::Tensor& first = images[0];
  TORCH_CHECK(first.dim() == 3, "image_batch: images[0] must have 3 dimensions (H, W, C), got shape ",
              first.sizes());
  const int64_t height = first.size(0), width = first.size(1), channels = first.size(2);
  std::vector<SampleView> samples;
  samples.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor& image = images[i];
    const std::string name = "images[" + std::to_string(i) + "]";
    check_image_dtype(image, name.c_str());
    TORCH_CHECK(image.sizes() == first.sizes(), "image_batch: all images must have one size, (H, W, C) = ",
                first.sizes(), " as images[0], but ", name, " has ", image.sizes());
    const int64_t stride_c = effective_stride(image, 2, 1);
    const int64_t stride_w = effective_stride(image, 1, stride_c == 1 ? channels : 1);
    samples.push_back({image.const_data_ptr<uint8_t>(), image.stride(0), stride_w, stride_c});
  }
  return normalise_samples(samples, height, width, channels, mean, std, flip);
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CPU, m) {
  m.impl("image_batch", &image_batch_cpu);
  m.impl("image_batch.list", &image_batch_list_cpu);
}
