// kernel_fused::bias_gelu and its backward (CUDA): y = gelu(x + bias) over the last dimension,
// approximate "none" (erf) or "tanh", with ATen's formulas; the backward returns grad_x and grad_bias
// (grad_x summed over the leading dimensions) from one read of grad and x.
//
// Forward: elementwise, each thread a 16-byte vector of one row when the rows allow it. Backward: a
// block covers 32 columns and kRowsPerBlock rows at a time, walking down its slice of rows, so the
// column sums stay in registers; the per-block partial sums are added in a second kernel in a fixed
// order (deterministic, no atomics). Half and bfloat16 compute in float.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>

namespace {

constexpr int kThreads = 256;
constexpr int kColumns = 32;  // backward block: one warp across 32 columns...
constexpr int kRowsPerBlock = 8;  // ...times 8 rows
constexpr double kSqrt1_2 = 0.70710678118654752440;    // 1 / sqrt(2)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
constexpr double kKappa = 0.044715;

__device__ __forceinline__ float device_erf(float x) { return erff(x); }
__device__ __forceinline__ double device_erf(double x) { return ::erf(x); }
__device__ __forceinline__ float device_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double device_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float device_exp(float x) { return expf(x); }
__device__ __forceinline__ double device_exp(double x) { return ::exp(x); }

template <typename acc_t, bool kTanh>
__device__ __forceinline__ acc_t gelu(acc_t z) {
  if (kTanh) {
    const acc_t inner = acc_t(kSqrt2OverPi) * (z + acc_t(kKappa) * z * z * z);
    return acc_t(0.5) * z * (acc_t(1) + device_tanh(inner));
  }
  return acc_t(0.5) * z * (acc_t(1) + device_erf(z * acc_t(kSqrt1_2)));
}

// d gelu(z) / dz
template <typename acc_t, bool kTanh>
__device__ __forceinline__ acc_t gelu_derivative(acc_t z) {
  if (kTanh) {
    const acc_t z2 = z * z;
    const acc_t t = device_tanh(acc_t(kSqrt2OverPi) * (z + acc_t(kKappa) * z2 * z));
    return acc_t(0.5) * (acc_t(1) + t) +
           acc_t(0.5) * z * (acc_t(1) - t * t) * acc_t(kSqrt2OverPi) * (acc_t(1) + acc_t(3 * kKappa) * z2);
  }
  const acc_t cdf = acc_t(0.5) * (acc_t(1) + device_erf(z * acc_t(kSqrt1_2)));
  const acc_t pdf = acc_t(kInvSqrt2Pi) * device_exp(acc_t(-0.5) * z * z);
  return cdf + z * pdf;
}

// kVec consecutive elements, loaded and stored as one access
template <typename scalar_t, int kVec>
struct alignas(sizeof(scalar_t) * kVec) Pack {
  scalar_t v[kVec];
};

// x and y hold `vectors` packs of kVec; columns is a multiple of kVec so a pack never straddles rows.
template <typename scalar_t, int kVec, bool kTanh>
__global__ void bias_gelu_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                                         scalar_t* __restrict__ y, int64_t vectors, int64_t columns) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  using P = Pack<scalar_t, kVec>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < vectors;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t column = (i * kVec) % columns;
    const P xv = reinterpret_cast<const P*>(x)[i];
    const P bv = *reinterpret_cast<const P*>(bias + column);
    P out;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      out.v[k] = static_cast<scalar_t>(gelu<acc_t, kTanh>(static_cast<acc_t>(xv.v[k]) + static_cast<acc_t>(bv.v[k])));
    }
    reinterpret_cast<P*>(y)[i] = out;
  }
}

// grad_x = grad * gelu'(x + bias) for the block's 32 columns and its rows; partial[blockIdx.y, column]
// = the sum of grad_x over those rows. Block (kColumns, kRowsPerBlock).
template <typename scalar_t, bool kTanh>
__global__ void bias_gelu_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
                                          const scalar_t* __restrict__ bias, scalar_t* __restrict__ grad_x,
                                          at::acc_type<scalar_t, true>* __restrict__ partial, int64_t rows,
                                          int64_t columns) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  __shared__ acc_t tile[kRowsPerBlock][kColumns];
  const int64_t column = blockIdx.x * static_cast<int64_t>(kColumns) + threadIdx.x;
  acc_t sum = 0;
  if (column < columns) {
    const acc_t b = static_cast<acc_t>(bias[column]);
    for (int64_t row = blockIdx.y * static_cast<int64_t>(kRowsPerBlock) + threadIdx.y; row < rows;
         row += static_cast<int64_t>(gridDim.y) * kRowsPerBlock) {
      const int64_t i = row * columns + column;
      const acc_t g = static_cast<acc_t>(grad[i]) * gelu_derivative<acc_t, kTanh>(static_cast<acc_t>(x[i]) + b);
      grad_x[i] = static_cast<scalar_t>(g);
      sum += g;
    }
  }
  tile[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && column < columns) {
#pragma unroll
    for (int r = 1; r < kRowsPerBlock; ++r) sum += tile[r][threadIdx.x];
    partial[blockIdx.y * columns + column] = sum;
  }
}

// grad_bias[column] = the sum over the `slices` partial rows, in order.
template <typename scalar_t>
__global__ void column_sum_kernel(const at::acc_type<scalar_t, true>* __restrict__ partial, int64_t slices,
                                  int64_t columns, scalar_t* __restrict__ out) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  for (int64_t column = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; column < columns;
       column += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    acc_t sum = 0;
    for (int64_t s = 0; s < slices; ++s) sum += partial[s * columns + column];
    out[column] = static_cast<scalar_t>(sum);
  }
}

int multiprocessors() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

bool is_tanh(c10::string_view approximate) {
  TORCH_CHECK(approximate == "none" || approximate == "tanh",
              "bias_gelu: approximate must be \"none\" or \"tanh\", got \"", std::string(approximate), "\"");
  return approximate == "tanh";
}

void check_inputs(const at::Tensor& x, const at::Tensor& bias, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got ", x.device());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a scalar");
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(-1), op, ": bias must be (D,) with D = ", x.size(-1),
              ", the last dimension of x, got shape ", bias.sizes());
  TORCH_CHECK(x.is_floating_point(), op, ": x must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(bias.scalar_type() == x.scalar_type(), op, ": bias must have x's dtype ", x.scalar_type(), ", got ",
              bias.scalar_type());
  TORCH_CHECK(bias.device() == x.device(), op, ": bias is on ", bias.device(), ", x on ", x.device());
}

template <typename scalar_t, int kVec>
void launch_forward(const at::Tensor& x, const at::Tensor& bias, at::Tensor& y, bool tanh_approx) {
  const int64_t vectors = x.numel() / kVec, columns = x.size(-1);
  const int blocks = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>((vectors + kThreads - 1) / kThreads, int64_t(multiprocessors()) * 32)));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  if (tanh_approx) {
    bias_gelu_forward_kernel<scalar_t, kVec, true><<<blocks, kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), vectors, columns);
  } else {
    bias_gelu_forward_kernel<scalar_t, kVec, false><<<blocks, kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), vectors, columns);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

at::Tensor bias_gelu_cuda(const at::Tensor& x, const at::Tensor& bias, c10::string_view approximate) {
  check_inputs(x, bias, "bias_gelu");
  const bool tanh_approx = is_tanh(approximate);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_gelu_cuda", [&] {
    constexpr int kVec = 16 / sizeof(scalar_t);  // one 16-byte access
    const bool vectorised = x.size(-1) % kVec == 0 && aligned(xc.const_data_ptr(), 16) &&
                            aligned(bc.const_data_ptr(), 16) && aligned(y.const_data_ptr(), 16);
    if (vectorised) {
      launch_forward<scalar_t, kVec>(xc, bc, y, tanh_approx);
    } else {
      launch_forward<scalar_t, 1>(xc, bc, y, tanh_approx);
    }
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> bias_gelu_backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                           const at::Tensor& bias, c10::string_view approximate) {
  check_inputs(x, bias, "bias_gelu_backward");
  TORCH_CHECK(grad.sizes() == x.sizes(), "bias_gelu_backward: grad must have x's shape ", x.sizes(), ", got ",
              grad.sizes());
  TORCH_CHECK(grad.device() == x.device(), "bias_gelu_backward: grad is on ", grad.device(), ", x on ", x.device());
  const bool tanh_approx = is_tanh(approximate);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t columns = x.size(-1);
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_bias = at::empty({columns}, x.options());
  if (columns == 0) return {grad_x, grad_bias};
  const int64_t rows = x.numel() / columns;
  if (rows == 0) return {grad_x, grad_bias.zero_()};
  const at::Tensor gc = grad.to(x.scalar_type()).contiguous(), xc = x.contiguous(), bc = bias.contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_gelu_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    // enough blocks to fill the GPU about 8 times (8 blocks of 256 threads per multiprocessor), split
    // between the column tiles and slices of rows; each slice leaves one partial row of sums
    const int64_t tiles = (columns + kColumns - 1) / kColumns;
    const int64_t want = std::max<int64_t>(1, int64_t(multiprocessors()) * 8 / tiles);
    const int64_t slices = std::min<int64_t>({want, (rows + kRowsPerBlock - 1) / kRowsPerBlock, 65535});
    TORCH_CHECK(tiles <= std::numeric_limits<int>::max(), "bias_gelu_backward: last dimension too large");
    at::Tensor partial = at::empty({slices, columns}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(slices));
    const dim3 block(kColumns, kRowsPerBlock);
    if (tanh_approx) {
      bias_gelu_backward_kernel<scalar_t, true><<<grid, block, 0, stream>>>(
          gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
          grad_x.mutable_data_ptr<scalar_t>(), partial.mutable_data_ptr<acc_t>(), rows, columns);
    } else {
      bias_gelu_backward_kernel<scalar_t, false><<<grid, block, 0, stream>>>(
          gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
          grad_x.mutable_data_ptr<scalar_t>(), partial.mutable_data_ptr<acc_t>(), rows, columns);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int blocks = static_cast<int>(std::min<int64_t>((columns + kThreads - 1) / kThreads, int64_t(multiprocessors()) * 32));
    column_sum_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(partial.const_data_ptr<acc_t>(), slices, columns,
                                                                 grad_bias.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_x, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CUDA, m) {
  m.impl("bias_gelu", &bias_gelu_cuda);
  m.impl("bias_gelu_backward", &bias_gelu_backward_cuda);
}
