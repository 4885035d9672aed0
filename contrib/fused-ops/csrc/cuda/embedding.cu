// kernel_fused::masked_mean_embedding and its backward (CUDA): out[n] = the mean of weight[indices[n, l]]
// over the l where padding_mask[n, l] is false (zeros where there is none), without the (N, L, D)
// gathered tensor the reference builds.
//
// Forward: a block holds a few rows (threadIdx.y) and spreads the columns over threadIdx.x, each thread
// keeping kColumnsPerThread sums in registers while it walks the row's tokens, so every weight row is
// read coalesced and every output element written once.
// Backward: deterministic, no atomics. The counted tokens are sorted by id (a stable sort: within an id,
// in (n, l) order, padding given the id num_weights so it sorts last and is skipped), then the first
// position of each id's run sums the whole run for its weight row: every row of the gradient is written
// by one thread per column, always in the same order.
// Ids out of range at counted positions stop the kernel with a device-side assert, as ATen's CUDA
// embedding does (checking them on the host would need a synchronising copy); padding may hold any id.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <tuple>

namespace {

constexpr int kThreads = 256;
constexpr int kColumnsPerThread = 4;
constexpr int kWarp = 32;

// correctly rounded division (as the reference's), whatever --use_fast_math does to `/`
__device__ __forceinline__ float divide(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double divide(double a, double b) { return __ddiv_rn(a, b); }

// A 2D launch: blockDim.x threads across the columns, each taking kColumnsPerThread columns blockDim.x
// apart (then the next such chunk), blockDim.y items (rows, or sorted tokens) per block.
struct Launch {
  dim3 block;
  int blocks;
};

Launch launch_for(int64_t items, int64_t columns) {
  const int64_t per_thread_columns = (columns + kColumnsPerThread - 1) / kColumnsPerThread;
  const int tx = static_cast<int>(std::min<int64_t>(kThreads, (per_thread_columns + kWarp - 1) / kWarp * kWarp));
  const int ty = kThreads / tx;
  const int64_t cap = int64_t(at::cuda::getCurrentDeviceProperties()->multiProcessorCount) * 32;
  return {dim3(tx, ty), static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((items + ty - 1) / ty, cap)))};
}

template <typename scalar_t>
__global__ void masked_mean_embedding_kernel(const scalar_t* __restrict__ weight, int64_t weight_row_stride,
                                             const int64_t* __restrict__ indices, const bool* __restrict__ padding,
                                             int64_t rows, int64_t length, int64_t columns, int64_t num_weights,
                                             scalar_t* __restrict__ out) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  const int64_t chunk = static_cast<int64_t>(blockDim.x) * kColumnsPerThread;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; row < rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int64_t* __restrict__ ids = indices + row * length;
    const bool* __restrict__ pad = padding + row * length;
    for (int64_t d0 = threadIdx.x; d0 < columns; d0 += chunk) {
      acc_t sum[kColumnsPerThread];
#pragma unroll
      for (int k = 0; k < kColumnsPerThread; ++k) sum[k] = acc_t(0);
      int64_t count = 0;
      for (int64_t l = 0; l < length; ++l) {
        if (pad[l]) continue;
        const int64_t id = ids[l];
        CUDA_KERNEL_ASSERT(id >= 0 && id < num_weights && "masked_mean_embedding: index out of range");
        ++count;
        const scalar_t* __restrict__ w = weight + id * weight_row_stride;
#pragma unroll
        for (int k = 0; k < kColumnsPerThread; ++k) {
          const int64_t d = d0 + static_cast<int64_t>(k) * blockDim.x;
          if (d < columns) sum[k] += static_cast<acc_t>(w[d]);
        }
      }
      // the reference divides by the count clamped to 1 (a row of padding gives its zero sum)
      const acc_t divisor = static_cast<acc_t>(count > 1 ? count : 1);
#pragma unroll
      for (int k = 0; k < kColumnsPerThread; ++k) {
        const int64_t d = d0 + static_cast<int64_t>(k) * blockDim.x;
        if (d < columns) out[row * columns + d] = static_cast<scalar_t>(divide(sum[k], divisor));
      }
    }
  }
}

// keys: the ids sorted (padding as num_weights, last); order: each sorted key's flat position n * L + l;
// counts: each row's counted tokens. A position that begins a run of equal keys writes its weight row.
template <typename scalar_t>
__global__ void masked_mean_embedding_backward_kernel(const scalar_t* __restrict__ grad, const int64_t* __restrict__ keys,
                                                      const int64_t* __restrict__ order,
                                                      const int64_t* __restrict__ counts, int64_t tokens,
                                                      int64_t length, int64_t columns, int64_t num_weights,
                                                      scalar_t* __restrict__ grad_weight) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  const int64_t chunk = static_cast<int64_t>(blockDim.x) * kColumnsPerThread;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; j < tokens;
       j += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int64_t key = keys[j];
    if (key == num_weights || (j > 0 && keys[j - 1] == key)) continue;  // padding, or inside a run
    CUDA_KERNEL_ASSERT(key >= 0 && key < num_weights && "masked_mean_embedding_backward: index out of range");
    for (int64_t d0 = threadIdx.x; d0 < columns; d0 += chunk) {
      acc_t sum[kColumnsPerThread];
#pragma unroll
      for (int k = 0; k < kColumnsPerThread; ++k) sum[k] = acc_t(0);
      for (int64_t r = j; r < tokens && keys[r] == key; ++r) {
        const int64_t n = order[r] / length;
        const acc_t divisor = static_cast<acc_t>(counts[n]);  // >= 1: the row holds this token
        const scalar_t* __restrict__ g = grad + n * columns;
#pragma unroll
        for (int k = 0; k < kColumnsPerThread; ++k) {
          const int64_t d = d0 + static_cast<int64_t>(k) * blockDim.x;
          // grad[n] / count_n, by division as the reference's autograd computes it
          if (d < columns) sum[k] += divide(static_cast<acc_t>(g[d]), divisor);
        }
      }
#pragma unroll
      for (int k = 0; k < kColumnsPerThread; ++k) {
        const int64_t d = d0 + static_cast<int64_t>(k) * blockDim.x;
        if (d < columns) grad_weight[key * columns + d] = static_cast<scalar_t>(sum[k]);
      }
    }
  }
}

at::Tensor masked_mean_embedding_cuda(const at::Tensor& weight, const at::Tensor& indices,
                                      const at::Tensor& padding_mask) {
  constexpr const char* op = "masked_mean_embedding";
  TORCH_CHECK(weight.is_cuda(), op, ": weight must be a CUDA tensor, got ", weight.device());
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be (V, D), got ", weight.dim(), " dimensions");
  TORCH_CHECK(weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kDouble, op,
              ": weight must be float32 or float64, got ", weight.scalar_type());
  kernel_fused::check_tokens(indices, padding_mask, op);
  TORCH_CHECK(indices.device() == weight.device(), op, ": indices are on ", indices.device(), ", weight on ",
              weight.device());
  const c10::cuda::CUDAGuard guard(weight.device());
  const int64_t V = weight.size(0), D = weight.size(1), N = indices.size(0), L = indices.size(1);
  at::Tensor out = at::empty({N, D}, weight.options());
  if (N == 0 || D == 0) return out;
  // rows are read whole: unit column stride is all that matters (any row stride, e.g. a slice)
  const at::Tensor w = (weight.stride(1) == 1 || D == 1) ? weight : weight.contiguous();
  const at::Tensor idx = indices.contiguous(), mask = padding_mask.contiguous();
  const Launch launch = launch_for(N, D);
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "masked_mean_embedding_cuda", [&] {
    masked_mean_embedding_kernel<scalar_t><<<launch.blocks, launch.block, 0, at::cuda::getCurrentCUDAStream()>>>(
        w.const_data_ptr<scalar_t>(), w.stride(0), idx.const_data_ptr<int64_t>(), mask.const_data_ptr<bool>(), N, L,
        D, V, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor masked_mean_embedding_backward_cuda(const at::Tensor& grad, const at::Tensor& indices,
                                               const at::Tensor& padding_mask, int64_t num_weights) {
  constexpr const char* op = "masked_mean_embedding_backward";
  kernel_fused::check_tokens(indices, padding_mask, op);
  const int64_t N = indices.size(0), L = indices.size(1);
  TORCH_CHECK(grad.is_cuda(), op, ": grad must be a CUDA tensor, got ", grad.device());
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == N, op, ": grad must be (N, D) with N = ", N, ", got shape ",
              grad.sizes());
  TORCH_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble, op,
              ": grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK(indices.device() == grad.device(), op, ": indices are on ", indices.device(), ", grad on ",
              grad.device());
  TORCH_CHECK(num_weights >= 0, op, ": num_weights must be >= 0, got ", num_weights);
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t V = num_weights, D = grad.size(1), tokens = N * L;
  at::Tensor grad_weight = at::zeros({V, D}, grad.options());
  if (V == 0 || D == 0 || tokens == 0) return grad_weight;

  const at::Tensor g = grad.contiguous();
  const at::Tensor keys = indices.masked_fill(padding_mask, num_weights).reshape({tokens});
  const std::tuple<at::Tensor, at::Tensor> sorted = keys.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor& sorted_keys = std::get<0>(sorted);
  const at::Tensor& order = std::get<1>(sorted);
  const at::Tensor counts = padding_mask.logical_not().sum(1).contiguous();  // int64, (N,)
  const Launch launch = launch_for(tokens, D);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "masked_mean_embedding_backward_cuda", [&] {
    masked_mean_embedding_backward_kernel<scalar_t>
        <<<launch.blocks, launch.block, 0, at::cuda::getCurrentCUDAStream()>>>(
            g.const_data_ptr<scalar_t>(), sorted_keys.const_data_ptr<int64_t>(), order.const_data_ptr<int64_t>(),
            counts.const_data_ptr<int64_t>(), tokens, L, D, V, grad_weight.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CUDA, m) {
  m.impl("masked_mean_embedding", &masked_mean_embedding_cuda);
  m.impl("masked_mean_embedding_backward", &masked_mean_embedding_backward_cuda);
}
