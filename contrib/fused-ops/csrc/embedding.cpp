// CPU kernels of kernel_fused::masked_mean_embedding and its backward: out[n] = the mean of
// weight[indices[n, l]] over the l where padding_mask[n, l] is false (zeros where there is none),
// without the (N, L, D) gathered tensor the reference builds.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include "checks.h"

#include <vector>

namespace {

using at::vec::Vectorized;

[[noreturn]] void out_of_range(const char* op, int64_t id, int64_t n, int64_t l, int64_t V) {
  TORCH_CHECK(false, op, ": index ", id, " at position (", n, ", ", l, ") is out of range: weight has ", V,
              " rows (padding positions may hold any id)");
}

// Sums `count` rows of length D, rows[k] pointing at each, into out: blocks of four vectors live in
// registers across all rows, so each output element is written once.
template <typename scalar_t>
inline void sum_rows(const scalar_t* const* rows, int64_t count, int64_t D, scalar_t* out) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t S = Vec::size();
  int64_t d = 0;
  for (; d + 4 * S <= D; d += 4 * S) {
    Vec a0(0), a1(0), a2(0), a3(0);
    for (int64_t k = 0; k < count; ++k) {
      const scalar_t* r = rows[k] + d;
      a0 = a0 + Vec::loadu(r);
      a1 = a1 + Vec::loadu(r + S);
      a2 = a2 + Vec::loadu(r + 2 * S);
      a3 = a3 + Vec::loadu(r + 3 * S);
    }
    a0.store(out + d);
    a1.store(out + d + S);
    a2.store(out + d + 2 * S);
    a3.store(out + d + 3 * S);
  }
  for (; d + S <= D; d += S) {
    Vec a(0);
    for (int64_t k = 0; k < count; ++k) a = a + Vec::loadu(rows[k] + d);
    a.store(out + d);
  }
  for (; d < D; ++d) {
    scalar_t a = 0;
    for (int64_t k = 0; k < count; ++k) a += rows[k][d];
    out[d] = a;
  }
}

// out[d] /= divisor: a division (not a reciprocal product) rounds as the reference's does
template <typename scalar_t>
inline void divide_row(scalar_t* out, int64_t D, scalar_t divisor) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t S = Vec::size();
  int64_t d = 0;
  const Vec v(divisor);
  for (; d + S <= D; d += S) (Vec::loadu(out + d) / v).store(out + d);
  for (; d < D; ++d) out[d] /= divisor;
}

at::Tensor masked_mean_embedding_cpu(const at::Tensor& weight, const at::Tensor& indices,
                                     const at::Tensor& padding_mask) {
  constexpr const char* op = "masked_mean_embedding";
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be (V, D), got ", weight.dim(), " dimensions");
  TORCH_CHECK(weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kDouble, op,
              ": weight must be float32 or float64, got ", weight.scalar_type());
  kernel_fused::check_tokens(indices, padding_mask, op);
  TORCH_CHECK(indices.device() == weight.device(), op, ": indices are on ", indices.device(), ", weight on ",
              weight.device());
  const int64_t V = weight.size(0), D = weight.size(1), N = indices.size(0), L = indices.size(1);
  at::Tensor out = at::empty({N, D}, weight.options());
  if (N == 0 || D == 0) return out;
  // rows are read whole: unit column stride is all that matters (any row stride, e.g. a slice)
  const at::Tensor w = (weight.stride(1) == 1 || D == 1) ? weight : weight.contiguous();
  const at::Tensor idx = indices.contiguous();
  const at::Tensor mask = padding_mask.contiguous();

  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "masked_mean_embedding_cpu", [&] {
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    const int64_t row_stride = w.stride(0);
    const int64_t* ip = idx.const_data_ptr<int64_t>();
    const bool* mp = mask.const_data_ptr<bool>();
    scalar_t* op_out = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(L * D, 1));
    at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
      std::vector<const scalar_t*> rows(L);
      for (int64_t n = begin; n < end; ++n) {
        int64_t count = 0;
        for (int64_t l = 0; l < L; ++l) {
          if (mp[n * L + l]) continue;
          const int64_t id = ip[n * L + l];
          if (id < 0 || id >= V) out_of_range(op, id, n, l, V);
          rows[count++] = wp + id * row_stride;
        }
        sum_rows(rows.data(), count, D, op_out + n * D);
        if (count > 1) divide_row(op_out + n * D, D, static_cast<scalar_t>(count));
      }
    });
  });
  return out;
}

// grad_weight[v] = sum over the counted tokens with id v of grad[n] / count_n. The tokens are bucketed
// by id (a counting sort, in (n, l) order), then each weight row is summed by one thread from its own
// bucket: no two threads write a row, and every sum runs in the same order whatever the thread count.
at::Tensor masked_mean_embedding_backward_cpu(const at::Tensor& grad, const at::Tensor& indices,
                                              const at::Tensor& padding_mask, int64_t num_weights) {
  constexpr const char* op = "masked_mean_embedding_backward";
  kernel_fused::check_tokens(indices, padding_mask, op);
  const int64_t N = indices.size(0), L = indices.size(1);
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == N, op, ": grad must be (N, D) with N = ", N, ", got shape ",
              grad.sizes());
  TORCH_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble, op,
              ": grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK(num_weights >= 0, op, ": num_weights must be >= 0, got ", num_weights);
  const int64_t V = num_weights, D = grad.size(1);
  at::Tensor grad_weight = at::empty({V, D}, grad.options());
  if (V == 0 || D == 0) return grad_weight;

  const at::Tensor idx = indices.contiguous();
  const at::Tensor mask = padding_mask.contiguous();
  const int64_t* ip = idx.const_data_ptr<int64_t>();
  const bool* mp = mask.const_data_ptr<bool>();

  // bucket offsets by id, and each row's token count
  std::vector<int64_t> start(V + 1, 0), count(N, 0);
  for (int64_t n = 0; n < N; ++n) {
    int64_t c = 0;
    for (int64_t l = 0; l < L; ++l) {
      if (mp[n * L + l]) continue;
      const int64_t id = ip[n * L + l];
      if (id < 0 || id >= V) out_of_range(op, id, n, l, V);
      ++start[id + 1];
      ++c;
    }
    count[n] = c;
  }
  for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
  std::vector<int64_t> token_row(start[V]);  // the n of each counted token, bucketed by id
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l)
        if (!mp[n * L + l]) token_row[next[ip[n * L + l]]++] = n;
  }

  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "masked_mean_embedding_backward_cpu", [&] {
    // grad[n] / count_n once per row (by division, as the reference's autograd computes it)
    at::Tensor scaled = at::empty({N, D}, grad.options());
    {
      const at::Tensor g = grad.contiguous();
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      scalar_t* sp = scaled.data_ptr<scalar_t>();
      at::parallel_for(0, N, std::max<int64_t>(1, at::internal::GRAIN_SIZE / D), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          std::copy(gp + n * D, gp + (n + 1) * D, sp + n * D);
          if (count[n] > 1) divide_row(sp + n * D, D, static_cast<scalar_t>(count[n]));
        }
      });
    }
    const scalar_t* sp = scaled.const_data_ptr<scalar_t>();
    scalar_t* gw = grad_weight.data_ptr<scalar_t>();
    at::parallel_for(0, V, std::max<int64_t>(1, at::internal::GRAIN_SIZE / D), [&](int64_t begin, int64_t end) {
      std::vector<const scalar_t*> rows;
      for (int64_t v = begin; v < end; ++v) {
        const int64_t b = start[v], e = start[v + 1];
        rows.resize(e - b);
        for (int64_t k = b; k < e; ++k) rows[k - b] = sp + token_row[k] * D;
        sum_rows(rows.data(), e - b, D, gw + v * D);
      }
    });
  });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CPU, m) {
  m.impl("masked_mean_embedding", &masked_mean_embedding_cpu);
  m.impl("masked_mean_embedding_backward", &masked_mean_embedding_backward_cpu);
}
