// kernel_fused::cross_entropy and its backward (CUDA): F.cross_entropy for (N, C) scores and class-index
// targets, with ATen's weighted label smoothing. Per row i (w = weight, or ones):
//   loss_i = (1 - eps) * w[t_i] * (lse_i - x[i, t_i]) + eps / C * sum_c w[c] * (lse_i - x[i, c])
// and 0 for a row whose target is ignore_index; "mean" divides the sum by the sum of w[t_i] over the
// rows that are not ignored (0 / 0 = NaN when all are). The forward reads each row once (an online
// logsumexp) and keeps only the logsumexp; the backward rebuilds the softmax from it in one pass.
//
// Parallelism: a warp per row for up to kWarpRowClasses classes, a block per row beyond (a vocabulary);
// the reductions over rows run in one block in a fixed order, so results are deterministic.
// Targets out of range (other than ignore_index) stop the kernel with a device-side assert, as ATen's
// CUDA nll_loss does: checking them on the host would need a synchronising copy.
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
#include <limits>
#include <optional>
#include <tuple>

namespace {

constexpr int64_t kNone = 0, kMean = 1, kSum = 2;  // at::Reduction
constexpr int kWarp = 32;
constexpr int kWarpRowClasses = 1024;  // up to this many classes a warp per row, beyond a block per row
constexpr int kThreads = 256;          // warp-per-row blocks (8 rows) and the 2D backward blocks
constexpr int kRowThreads = 512;       // block-per-row blocks
constexpr int kReduceThreads = 1024;   // the single block that sums over rows

__device__ __forceinline__ float device_exp(float x) { return expf(x); }
__device__ __forceinline__ double device_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float device_log(float x) { return logf(x); }
__device__ __forceinline__ double device_log(double x) { return ::log(x); }

// The running state of one row (or part of it): an online logsumexp, plus the sums label smoothing
// needs, taken relative to the row's first score x0 so that sum_c w[c] * (lse - x[c]) does not cancel
// catastrophically for large scores.
template <typename acc_t>
struct RowState {
  acc_t max;   // of the scores seen
  acc_t sum;   // of exp(x - max)
  acc_t wx;    // of w[c] * (x[c] - x0)
  acc_t w;     // of w[c]
};

template <typename acc_t>
__device__ __forceinline__ RowState<acc_t> merge(const RowState<acc_t>& a, const RowState<acc_t>& b) {
  constexpr acc_t kNegInf = -std::numeric_limits<acc_t>::infinity();
  const acc_t m = a.max > b.max ? a.max : b.max;
  // a part that saw no finite score has max -inf: it adds its sum times 0 (0, or NaN when it saw a
  // NaN), never exp(-inf - -inf) = NaN
  const acc_t sa = a.max == kNegInf ? a.sum * acc_t(0) : a.sum * device_exp(a.max - m);
  const acc_t sb = b.max == kNegInf ? b.sum * acc_t(0) : b.sum * device_exp(b.max - m);
  return {m, sa + sb, a.wx + b.wx, a.w + b.w};
}

template <typename acc_t>
__device__ __forceinline__ RowState<acc_t> warp_reduce(RowState<acc_t> s) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    RowState<acc_t> other;
    other.max = __shfl_xor_sync(0xffffffffu, s.max, offset);
    other.sum = __shfl_xor_sync(0xffffffffu, s.sum, offset);
    other.wx = __shfl_xor_sync(0xffffffffu, s.wx, offset);
    other.w = __shfl_xor_sync(0xffffffffu, s.w, offset);
    s = merge(s, other);
  }
  return s;
}

// The whole block's state, valid in thread 0. Ends with a barrier, so the caller may call it again.
template <typename acc_t>
__device__ __forceinline__ RowState<acc_t> block_reduce(RowState<acc_t> s) {
  __shared__ RowState<acc_t> partial[kRowThreads / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  s = warp_reduce(s);
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < warps ? partial[lane]
                     : RowState<acc_t>{-std::numeric_limits<acc_t>::infinity(), acc_t(0), acc_t(0), acc_t(0)};
    s = warp_reduce(s);
  }
  __syncthreads();
  return s;
}

// Writes lse[row] and, with reduction none, loss[row]; otherwise the row's loss and its weight in the
// mean's divisor (w[t], 0 when ignored) to row_loss / row_weight for the reduction kernel.
template <typename scalar_t, typename acc_t, bool kBlockPerRow>
__global__ void cross_entropy_forward_kernel(const scalar_t* __restrict__ logits, const int64_t* __restrict__ target,
                                             const scalar_t* __restrict__ weight, int64_t rows, int64_t classes,
                                             int64_t ignore_index, acc_t smoothing, scalar_t* __restrict__ lse,
                                             scalar_t* __restrict__ loss, acc_t* __restrict__ row_loss,
                                             acc_t* __restrict__ row_weight) {
  const int lane = kBlockPerRow ? threadIdx.x : threadIdx.x % kWarp;
  const int width = kBlockPerRow ? blockDim.x : kWarp;
  const int64_t groups = kBlockPerRow ? 1 : blockDim.x / kWarp;  // rows a block works on at once
  const int64_t first = blockIdx.x * groups + (kBlockPerRow ? 0 : threadIdx.x / kWarp);
  const bool smooth = smoothing > acc_t(0);
  // rows are uniform across a warp (and across the block when it shares a row): the shuffles and
  // barriers inside the loop are reached by all the threads they wait for
  for (int64_t row = first; row < rows; row += gridDim.x * groups) {
    const scalar_t* __restrict__ x = logits + row * classes;
    const acc_t x0 = static_cast<acc_t>(x[0]);
    RowState<acc_t> s{-std::numeric_limits<acc_t>::infinity(), acc_t(0), acc_t(0), acc_t(0)};
    for (int64_t c = lane; c < classes; c += width) {
      const acc_t v = static_cast<acc_t>(x[c]);
      if (v > s.max) {
        s.sum = s.sum * device_exp(s.max - v) + acc_t(1);  // exp(-inf) = 0 on the first score
        s.max = v;
      } else if (v != -std::numeric_limits<acc_t>::infinity()) {
        s.sum += device_exp(v - s.max);  // a NaN score lands here and makes the sum NaN
      }
      if (smooth) {
        const acc_t wc = weight != nullptr ? static_cast<acc_t>(weight[c]) : acc_t(1);
        s.wx += wc * (v - x0);
        s.w += wc;
      }
    }
    s = kBlockPerRow ? block_reduce(s) : warp_reduce(s);
    if (lane != 0) continue;

    const acc_t l = s.max + device_log(s.sum);  // -inf for an all -inf row (log 0), as the CPU kernel
    lse[row] = static_cast<scalar_t>(l);
    const int64_t t = target[row];
    acc_t li = 0, wt = 0;
    if (t != ignore_index) {
      CUDA_KERNEL_ASSERT(t >= 0 && t < classes && "cross_entropy: target out of bounds");
      wt = weight != nullptr ? static_cast<acc_t>(weight[t]) : acc_t(1);
      li = wt * (l - static_cast<acc_t>(x[t]));
      if (smooth) {
        const acc_t smooth_term = s.w * (l - x0) - s.wx;  // sum_c w[c] * (l - x[c])
        li = (acc_t(1) - smoothing) * li + smoothing / static_cast<acc_t>(classes) * smooth_term;
      }
    }
    if (loss != nullptr) {
      loss[row] = static_cast<scalar_t>(li);
    } else {
      row_loss[row] = li;
      row_weight[row] = wt;
    }
  }
}

// Sums two per-thread values over the block in a fixed order (deterministic); the totals are valid in
// thread 0. For single-block kernels of kReduceThreads threads.
template <typename acc_t>
__device__ __forceinline__ void block_sum_pair(acc_t& a, acc_t& b) {
  __shared__ acc_t partial_a[kReduceThreads / kWarp], partial_b[kReduceThreads / kWarp];
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    a += __shfl_xor_sync(0xffffffffu, a, offset);
    b += __shfl_xor_sync(0xffffffffu, b, offset);
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  if (lane == 0) {
    partial_a[warp] = a;
    partial_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < warps ? partial_a[lane] : acc_t(0);
    b = lane < warps ? partial_b[lane] : acc_t(0);
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      a += __shfl_xor_sync(0xffffffffu, a, offset);
      b += __shfl_xor_sync(0xffffffffu, b, offset);
    }
  }
}

// The reduced loss, in one block: the sum of the rows' losses, divided for "mean" by the sum of their
// weights.
template <typename scalar_t, typename acc_t>
__global__ void cross_entropy_reduce_kernel(const acc_t* __restrict__ row_loss, const acc_t* __restrict__ row_weight,
                                            int64_t rows, bool mean, scalar_t* __restrict__ out) {
  acc_t total = 0, total_weight = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    total += row_loss[i];
    total_weight += row_weight[i];
  }
  block_sum_pair(total, total_weight);
  // 0 / 0 = NaN when every target is ignored (or there are no rows), as PyTorch; written explicitly
  // rather than left to --use_fast_math's division
  if (threadIdx.x == 0) {
    *out = static_cast<scalar_t>(!mean ? total
                                       : total_weight == acc_t(0) ? std::numeric_limits<acc_t>::quiet_NaN()
                                                                  : total / total_weight);
  }
}

// In one block: sums[0] = the mean's divisor (sum of w[t] over the rows not ignored), sums[1] = the sum
// of w over the classes.
template <typename scalar_t, typename acc_t>
__global__ void cross_entropy_backward_sums_kernel(const int64_t* __restrict__ target,
                                                   const scalar_t* __restrict__ weight, int64_t rows, int64_t classes,
                                                   int64_t ignore_index, acc_t* __restrict__ sums) {
  acc_t divisor = 0, weight_sum = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    const int64_t t = target[i];
    if (t == ignore_index) continue;
    CUDA_KERNEL_ASSERT(t >= 0 && t < classes && "cross_entropy_backward: target out of bounds");
    divisor += weight != nullptr ? static_cast<acc_t>(weight[t]) : acc_t(1);
  }
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
    weight_sum += weight != nullptr ? static_cast<acc_t>(weight[c]) : acc_t(1);
  }
  block_sum_pair(divisor, weight_sum);
  if (threadIdx.x == 0) {
    sums[0] = divisor;
    sums[1] = weight_sum;
  }
}

// grad_logits[i, c] = g_i * (A_i * p[i, c] - eps / C * w[c]) - g_i * (1 - eps) * w[t_i] * [c == t_i], with
// p = exp(x - lse), A_i = (1 - eps) * w[t_i] + eps / C * sum(w), g_i the loss gradient of row i (divided by
// the divisor for "mean"), and a zero row where the target is ignored. Block (tx, ty): ty rows at once,
// tx threads across a row's classes.
template <typename scalar_t, typename acc_t>
__global__ void cross_entropy_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ logits,
                                              const int64_t* __restrict__ target, const scalar_t* __restrict__ weight,
                                              const scalar_t* __restrict__ lse, const acc_t* __restrict__ sums,
                                              int64_t rows, int64_t classes, int64_t ignore_index, acc_t smoothing,
                                              int64_t reduction, scalar_t* __restrict__ grad_logits) {
  const acc_t eps_c = smoothing / static_cast<acc_t>(classes);
  const acc_t weight_sum = weight != nullptr ? sums[1] : static_cast<acc_t>(classes);
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; row < rows;
       row += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    scalar_t* __restrict__ out = grad_logits + row * classes;
    const int64_t t = target[row];
    if (t == ignore_index) {
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) out[c] = scalar_t(0);
      continue;
    }
    CUDA_KERNEL_ASSERT(t >= 0 && t < classes && "cross_entropy_backward: target out of bounds");
    acc_t g = static_cast<acc_t>(grad[reduction == kNone ? row : 0]);
    if (reduction == kMean) g = g / sums[0];
    const acc_t wt = weight != nullptr ? static_cast<acc_t>(weight[t]) : acc_t(1);
    const acc_t a = g * ((acc_t(1) - smoothing) * wt + eps_c * weight_sum);
    const acc_t b = g * eps_c;
    const acc_t at_target = g * (acc_t(1) - smoothing) * wt;
    const acc_t l = static_cast<acc_t>(lse[row]);
    const scalar_t* __restrict__ x = logits + row * classes;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      const acc_t wc = weight != nullptr ? static_cast<acc_t>(weight[c]) : acc_t(1);
      acc_t v = a * device_exp(static_cast<acc_t>(x[c]) - l) - b * wc;
      if (c == t) v -= at_target;
      out[c] = static_cast<scalar_t>(v);
    }
  }
}

struct Checked {
  at::Tensor logits, target, weight;  // contiguous; weight undefined when absent
};

Checked check_inputs(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weight,
                     double label_smoothing, int64_t reduction) {
  TORCH_CHECK(logits.is_cuda(), "cross_entropy: logits must be a CUDA tensor, got ", logits.device());
  kernel_fused::check_cross_entropy(logits, target, label_smoothing, reduction);
  const int64_t N = logits.size(0), C = logits.size(1);
  TORCH_CHECK(N == 0 || C > 0, "cross_entropy: logits must have at least one class, got shape ", logits.sizes());
  Checked c{logits.contiguous(), target.contiguous(), at::Tensor()};
  if (weight.has_value() && weight->defined()) {
    TORCH_CHECK(weight->dim() == 1 && weight->size(0) == C, "cross_entropy: weight must be (C,) = (", C,
                ",), got shape ", weight->sizes());
    TORCH_CHECK(weight->scalar_type() == logits.scalar_type(), "cross_entropy: weight must have the logits' dtype ",
                logits.scalar_type(), ", got ", weight->scalar_type());
    TORCH_CHECK(weight->device() == logits.device(), "cross_entropy: weight is on ", weight->device(), ", logits on ",
                logits.device());
    c.weight = weight->contiguous();
  }
  return c;
}

int multiprocessors() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

std::tuple<at::Tensor, at::Tensor> cross_entropy_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                      const std::optional<at::Tensor>& weight, int64_t ignore_index,
                                                      double label_smoothing, int64_t reduction) {
  const Checked in = check_inputs(logits, target, weight, label_smoothing, reduction);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t N = logits.size(0), C = logits.size(1);
  at::Tensor lse = at::empty({N}, logits.options());
  at::Tensor loss = reduction == kNone ? at::empty({N}, logits.options()) : at::empty({}, logits.options());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "cross_entropy_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    at::Tensor row_loss, row_weight;  // per-row terms of a reduced loss
    if (reduction != kNone) {
      row_loss = at::empty({N}, logits.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
      row_weight = at::empty_like(row_loss);
    }
    if (N > 0) {
      const scalar_t* w = in.weight.defined() ? in.weight.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* loss_out = reduction == kNone ? loss.mutable_data_ptr<scalar_t>() : nullptr;
      acc_t* rl = reduction == kNone ? nullptr : row_loss.mutable_data_ptr<acc_t>();
      acc_t* rw = reduction == kNone ? nullptr : row_weight.mutable_data_ptr<acc_t>();
      const acc_t eps = static_cast<acc_t>(label_smoothing);
      if (C <= kWarpRowClasses) {
        constexpr int64_t rows_per_block = kThreads / kWarp;
        const int blocks = static_cast<int>(
            std::min<int64_t>((N + rows_per_block - 1) / rows_per_block, int64_t(multiprocessors()) * 16));
        cross_entropy_forward_kernel<scalar_t, acc_t, false><<<blocks, kThreads, 0, stream>>>(
            in.logits.const_data_ptr<scalar_t>(), in.target.const_data_ptr<int64_t>(), w, N, C, ignore_index, eps,
            lse.mutable_data_ptr<scalar_t>(), loss_out, rl, rw);
      } else {
        const int blocks = static_cast<int>(std::min<int64_t>(N, int64_t(multiprocessors()) * 8));
        cross_entropy_forward_kernel<scalar_t, acc_t, true><<<blocks, kRowThreads, 0, stream>>>(
            in.logits.const_data_ptr<scalar_t>(), in.target.const_data_ptr<int64_t>(), w, N, C, ignore_index, eps,
            lse.mutable_data_ptr<scalar_t>(), loss_out, rl, rw);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (reduction != kNone) {  // also for N == 0: a sum of 0, a mean of NaN
      cross_entropy_reduce_kernel<scalar_t, acc_t><<<1, kReduceThreads, 0, stream>>>(
          row_loss.const_data_ptr<acc_t>(), row_weight.const_data_ptr<acc_t>(), N, reduction == kMean,
          loss.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {loss, lse};
}

at::Tensor cross_entropy_backward_cuda(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                                       const std::optional<at::Tensor>& weight, const at::Tensor& lse,
                                       int64_t ignore_index, double label_smoothing, int64_t reduction) {
  const Checked in = check_inputs(logits, target, weight, label_smoothing, reduction);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t N = logits.size(0), C = logits.size(1);
  kernel_fused::check_cross_entropy_backward(grad, logits, lse, reduction);
  TORCH_CHECK(lse.device() == logits.device() && grad.device() == logits.device(),
              "cross_entropy_backward: grad and lse must be on the logits' device ", logits.device(), ", got ",
              grad.device(), " and ", lse.device());
  at::Tensor grad_logits = at::empty({N, C}, logits.options());
  if (N == 0 || C == 0) return grad_logits;
  const at::Tensor g = grad.to(logits.scalar_type()).contiguous();
  const at::Tensor l = lse.contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "cross_entropy_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    const scalar_t* w = in.weight.defined() ? in.weight.const_data_ptr<scalar_t>() : nullptr;
    at::Tensor sums = at::empty({2}, logits.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    cross_entropy_backward_sums_kernel<scalar_t, acc_t><<<1, kReduceThreads, 0, stream>>>(
        in.target.const_data_ptr<int64_t>(), w, N, C, ignore_index, sums.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    // tx threads across the classes (a multiple of the warp), ty rows per block
    const int tx = static_cast<int>(std::min<int64_t>(kThreads, (C + kWarp - 1) / kWarp * kWarp));
    const int ty = kThreads / tx;
    const int blocks = static_cast<int>(std::min<int64_t>((N + ty - 1) / ty, int64_t(multiprocessors()) * 16));
    cross_entropy_backward_kernel<scalar_t, acc_t><<<blocks, dim3(tx, ty), 0, stream>>>(
        g.const_data_ptr<scalar_t>(), in.logits.const_data_ptr<scalar_t>(), in.target.const_data_ptr<int64_t>(), w,
        l.const_data_ptr<scalar_t>(), sums.const_data_ptr<acc_t>(), N, C, ignore_index,
        static_cast<acc_t>(label_smoothing), reduction, grad_logits.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CUDA, m) {
  m.impl("cross_entropy", &cross_entropy_cuda);
  m.impl("cross_entropy_backward", &cross_entropy_backward_cuda);
}
