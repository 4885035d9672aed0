// kernel_fused::image_batch and image_batch.list (CUDA): uint8 images, logical (N, H, W, C) with any
// strides (or a list of (H, W, C) images), to normalised float32 (N, C, H, W), the flipped samples
// mirrored left to right, in one pass over memory.
//
// One thread per output pixel (n, h, w) converts all its channels: consecutive threads take
// consecutive w, so every output plane is written coalesced, and both layouts that occur read
// coalesced without a copy: NHWC memory (a camera/numpy batch) reads each pixel's C interleaved
// bytes, a warp covering one contiguous span; NCHW memory (CHW tensors stacked, then permuted)
// reads each channel's row contiguously. Any other strides work through the same arithmetic.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <string>
#include <vector>

namespace {

// The per-channel constants travel as kernel parameters (no host-to-device copy, no sync); a batch
// with more channels takes one launch per group of kMaxChannels.
constexpr int kMaxChannels = 16;
// Likewise the pointers and strides of the list overload: one launch per group of kMaxImages images.
constexpr int kMaxImages = 32;
constexpr int kThreads = 256;

// (x / 255 - mean) / std as one multiply-add: x * scale + shift
struct ChannelAffine {
  float scale[kMaxChannels];
  float shift[kMaxChannels];
};

// One sample: where its first pixel (of this launch's first channel) is and its strides in bytes.
struct SampleView {
  const uint8_t* data;
  int64_t stride_h, stride_w, stride_c;
};

// A stacked (N, H, W, C) tensor: sample n begins n * stride_n after the first.
struct BatchSource {
  const uint8_t* data;
  int64_t stride_n, stride_h, stride_w, stride_c;
  __device__ SampleView sample(int64_t n) const { return {data + n * stride_n, stride_h, stride_w, stride_c}; }
};

// Up to kMaxImages separate (H, W, C) tensors, each with its own strides.
struct ListSource {
  const uint8_t* data[kMaxImages];
  int64_t stride_h[kMaxImages], stride_w[kMaxImages], stride_c[kMaxImages];
  __device__ SampleView sample(int64_t n) const { return {data[n], stride_h[n], stride_w[n], stride_c[n]}; }
};

// out points at this launch's first sample and channel; a sample's planes lie `plane` floats apart and
// consecutive samples `out_sample_stride` floats apart. flip (may be null) at this launch's first sample.
template <typename Source>
__global__ void image_batch_kernel(Source source, ChannelAffine affine, const bool* __restrict__ flip,
                                   float* __restrict__ out, int64_t samples, int64_t height, int64_t width,
                                   int channels, int64_t out_sample_stride) {
  // the constants indexed by a runtime channel: read from shared memory (a broadcast), copied there with
  // constant indices, since indexing the parameter at run time makes a stack copy in every thread
  __shared__ float scale[kMaxChannels], shift[kMaxChannels];
  if (threadIdx.x == 0) {
#pragma unroll
    for (int c = 0; c < kMaxChannels; ++c) {
      scale[c] = affine.scale[c];
      shift[c] = affine.shift[c];
    }
  }
  __syncthreads();
  const int64_t plane = height * width;
  const int64_t pixels = samples * plane;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < pixels;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = p / plane;
    const int64_t hw = p - n * plane;
    const int64_t h = hw / width;
    const int64_t w = hw - h * width;
    const int64_t src_w = (flip != nullptr && flip[n]) ? width - 1 - w : w;
    const SampleView image = source.sample(n);
    const uint8_t* __restrict__ in = image.data + h * image.stride_h + src_w * image.stride_w;
    float* __restrict__ o = out + n * out_sample_stride + hw;
#pragma unroll 4
    for (int c = 0; c < channels; ++c) {
      o[c * plane] = fmaf(static_cast<float>(in[c * image.stride_c]), scale[c], shift[c]);
    }
  }
}

// The flip mask, contiguous on the images' device (undefined: none flipped).
at::Tensor checked_flip(const std::optional<at::Tensor>& flip, int64_t samples, const at::Device& device) {
  if (!flip.has_value() || !flip->defined()) return at::Tensor();
  TORCH_CHECK(flip->scalar_type() == at::kBool, "image_batch: flip must be a bool tensor, got ",
              flip->scalar_type());
  TORCH_CHECK(flip->dim() == 1 && flip->size(0) == samples, "image_batch: flip must have shape (", samples,
              ",), one value per image, got ", flip->sizes());
  TORCH_CHECK(flip->device() == device, "image_batch: flip must be on the images' device ", device, ", got ",
              flip->device());
  return flip->contiguous();
}

void check_image(const at::Tensor& image, const char* what, const at::Device& device) {
  TORCH_CHECK(image.scalar_type() == at::kByte, "image_batch: ", what, " must be uint8, got ", image.scalar_type());
  TORCH_CHECK(image.device() == device, "image_batch: ", what, " must be on ", device, ", got ", image.device());
}

int blocks_for(int64_t items) {
  // enough blocks to fill the GPU a few times over; the grid-stride loop does the rest
  const int64_t cap = static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount) * 32;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, cap)));
}

// Launches the kernel once per group of kMaxChannels channels; `source_at(c0)` gives the source whose
// pointers are advanced to channel c0.
template <typename SourceAt>
void launch_by_channel_groups(SourceAt source_at, const std::vector<float>& scale, const std::vector<float>& shift,
                              const bool* flip, float* out, int64_t samples, int64_t height, int64_t width,
                              int64_t channels) {
  const int64_t plane = height * width;
  const int blocks = blocks_for(samples * plane);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  for (int64_t c0 = 0; c0 < channels; c0 += kMaxChannels) {
    const int count = static_cast<int>(std::min<int64_t>(kMaxChannels, channels - c0));
    ChannelAffine affine{};
    for (int c = 0; c < count; ++c) {
      affine.scale[c] = scale[c0 + c];
      affine.shift[c] = shift[c0 + c];
    }
    image_batch_kernel<<<blocks, kThreads, 0, stream>>>(source_at(c0), affine, flip, out + c0 * plane, samples,
                                                         height, width, count, channels * plane);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

at::Tensor image_batch_cuda(const at::Tensor& images, c10::ArrayRef<double> mean, c10::ArrayRef<double> std,
                            const std::optional<at::Tensor>& flip) {
  TORCH_CHECK(images.is_cuda(), "image_batch: images must be a CUDA tensor, got ", images.device());
  check_image(images, "images", images.device());
  TORCH_CHECK(images.dim() == 4, "image_batch: images must have 4 dimensions (N, H, W, C), got shape ",
              images.sizes());
  const c10::cuda::CUDAGuard guard(images.device());
  const int64_t count = images.size(0), height = images.size(1), width = images.size(2), channels = images.size(3);
  const auto [scale, shift] = kernel_fused::channel_affine(mean, std, channels);
  const at::Tensor flips = checked_flip(flip, count, images.device());
  at::Tensor out = at::empty({count, channels, height, width}, images.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;

  const uint8_t* base = images.const_data_ptr<uint8_t>();
  const int64_t sn = images.stride(0), sh = images.stride(1), sw = images.stride(2), sc = images.stride(3);
  launch_by_channel_groups([&](int64_t c0) { return BatchSource{base + c0 * sc, sn, sh, sw, sc}; }, scale, shift,
                           flips.defined() ? flips.const_data_ptr<bool>() : nullptr, out.mutable_data_ptr<float>(),
                           count, height, width, channels);
  return out;
}

at::Tensor image_batch_list_cuda(at::TensorList images, c10::ArrayRef<double> mean, c10::ArrayRef<double> std,
                                 const std::optional<at::Tensor>& flip) {
  if (images.empty()) {  // reached only through a CUDA flip: (0, C, 0, 0), as the reference's empty stack
    const int64_t channels = static_cast<int64_t>(std::max(mean.size(), std.size()));
    kernel_fused::channel_affine(mean, std, channels);  // the same checks as for a batch
    TORCH_CHECK(flip.has_value() && flip->defined(), "image_batch: images is an empty list");
    checked_flip(flip, 0, flip->device());
    return at::empty({0, channels, 0, 0}, flip->options().dtype(at::kFloat));
  }
  const at::Tensor& first = images[0];
  TORCH_CHECK(first.is_cuda(), "image_batch: images[0] must be a CUDA tensor, got ", first.device());
  TORCH_CHECK(first.dim() == 3, "image_batch: images[0] must have 3 dimensions (H, W, C), got shape ",
              first.sizes());
  const c10::cuda::CUDAGuard guard(first.device());
  const int64_t count = static_cast<int64_t>(images.size());
  const int64_t height = first.size(0), width = first.size(1), channels = first.size(2);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string name = "images[" + std::to_string(i) + "]";
    check_image(images[i], name.c_str(), first.device());
    TORCH_CHECK(images[i].sizes() == first.sizes(), "image_batch: all images must have one size, (H, W, C) = ",
                first.sizes(), " as images[0], but ", name, " has ", images[i].sizes());
  }
  const auto [scale, shift] = kernel_fused::channel_affine(mean, std, channels);
  const at::Tensor flips = checked_flip(flip, count, first.device());
  at::Tensor out = at::empty({count, channels, height, width}, first.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;

  const bool* flip_data = flips.defined() ? flips.const_data_ptr<bool>() : nullptr;
  float* out_data = out.mutable_data_ptr<float>();
  for (int64_t n0 = 0; n0 < count; n0 += kMaxImages) {
    const int64_t group = std::min<int64_t>(kMaxImages, count - n0);
    auto source_at = [&](int64_t c0) {
      ListSource source{};
      for (int64_t k = 0; k < group; ++k) {
        const at::Tensor& image = images[n0 + k];
        source.data[k] = image.const_data_ptr<uint8_t>() + c0 * image.stride(2);
        source.stride_h[k] = image.stride(0);
        source.stride_w[k] = image.stride(1);
        source.stride_c[k] = image.stride(2);
      }
      return source;
    };
    launch_by_channel_groups(source_at, scale, shift, flip_data ? flip_data + n0 : nullptr,
                             out_data + n0 * channels * height * width, group, height, width, channels);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CUDA, m) {
  m.impl("image_batch", &image_batch_cuda);
  m.impl("image_batch.list", &image_batch_list_cuda);
}
