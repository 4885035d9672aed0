// CPU kernels of kernel_fused::cross_entropy and its backward: F.cross_entropy for (N, C) scores and
// class-index targets, with ATen's weighted label smoothing. Per row i (w = weight, or ones):
//   loss_i = (1 - eps) * w[t_i] * (lse_i - x[i, t_i]) + eps / C * sum_c w[c] * (lse_i - x[i, c])
// and 0 for a row whose target is ignore_index; "mean" divides the sum by the sum of w[t_i] over the
// rows that are not ignored, as nll_loss does (0 / 0 = NaN when all are). The forward keeps only each
// row's logsumexp; the backward rebuilds the softmax from it, so the (N, C) log-probabilities that
// eager PyTorch stores between the two passes never exist.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include "checks.h"

#include <cmath>
#include <limits>
#include <optional>
#include <tuple>
#include <vector>

namespace {

using at::vec::Vectorized;

constexpr int64_t kNone = 0, kMean = 1, kSum = 2;  // at::Reduction

// float's exp with a 20-ulp polynomial (several times cheaper than the 1-ulp one); its error is far
// below float32 rounding of a loss summed over many terms. double keeps the exact one.
inline Vectorized<float> fast_exp(const Vectorized<float>& x) { return x.exp_u20(); }
inline Vectorized<double> fast_exp(const Vectorized<double>& x) { return x.exp(); }

// Rows cheap enough that splitting them across threads costs more than it saves.
inline int64_t rows_per_task(int64_t C) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(C, 1)); }

struct Checked {
  at::Tensor x;       // logits with unit class stride (a copy only when the input had another)
  at::Tensor target;  // contiguous int64
  at::Tensor weight;  // contiguous, or undefined
  double total_weight = 0;  // sum of w[t_i] over rows not ignored: the "mean" divisor
  double weight_sum = 0;    // sum of w over classes: C without weight
};

// Validates the arguments shared by forward and backward and computes the per-call constants.
Checked check_inputs(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weight,
                     int64_t ignore_index, double label_smoothing, int64_t reduction) {
  kernel_fused::check_cross_entropy(logits, target, label_smoothing, reduction);
  const int64_t N = logits.size(0), C = logits.size(1);

  Checked c;
  c.x = (logits.stride(1) == 1 || C <= 1) ? logits : logits.contiguous();
  c.target = target.contiguous();
  if (weight.has_value() && weight->defined()) {
    TORCH_CHECK(weight->dim() == 1 && weight->size(0) == C, "cross_entropy: weight must be (C,) = (", C,
                ",), got shape ", weight->sizes());
    TORCH_CHECK(weight->scalar_type() == logits.scalar_type(), "cross_entropy: weight must have the logits' dtype ",
                logits.scalar_type(), ", got ", weight->scalar_type());
    TORCH_CHECK(weight->device() == logits.device(), "cross_entropy: weight is on ", weight->device(),
                ", logits on ", logits.device());
    c.weight = weight->contiguous();
  }

  const int64_t* t = c.target.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "cross_entropy_check", [&] {
    const scalar_t* w = c.weight.defined() ? c.weight.data_ptr<scalar_t>() : nullptr;
    double total = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (t[i] == ignore_index) continue;
      TORCH_CHECK(t[i] >= 0 && t[i] < C, "cross_entropy: target ", t[i], " at index ", i,
                  " is out of bounds: classes are [0, ", C, ") (and ignore_index is ", ignore_index, ")");
      total += w ? static_cast<double>(w[t[i]]) : 1.0;
    }
    c.total_weight = total;
    double wsum = static_cast<double>(C);
    if (w) {
      wsum = 0;
      for (int64_t k = 0; k < C; ++k) wsum += w[k];
    }
    c.weight_sum = wsum;
  });
  return c;
}

// The last C % S classes as one vector, the lanes past the row holding `fill` (-inf: no effect on a max,
// and exp(-inf) adds 0): a scalar exp per leftover class would cost as much as several whole vectors.
template <typename scalar_t>
inline Vectorized<scalar_t> load_tail(const scalar_t* p, int64_t count, scalar_t fill) {
  using Vec = Vectorized<scalar_t>;
  return Vec::set(Vec(fill), Vec::loadu(p, count), count);
}

// max over the row, and sum_c w[c] * x[c] (or sum_c x[c]) when `dot` is wanted, in one read.
template <typename scalar_t>
inline void row_max_and_dot(const scalar_t* x, const scalar_t* w, int64_t C, bool dot, scalar_t& max_out,
                            scalar_t& dot_out) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t S = Vec::size();
  constexpr scalar_t ninf = -std::numeric_limits<scalar_t>::infinity();
  Vec vm(ninf), vs(0);
  int64_t c = 0;
  for (; c + S <= C; c += S) {
    Vec v = Vec::loadu(x + c);
    vm = at::vec::maximum(vm, v);
    if (dot) vs = w ? at::vec::fmadd(v, Vec::loadu(w + c), vs) : vs + v;
  }
  if (c < C) {
    vm = at::vec::maximum(vm, load_tail(x + c, C - c, ninf));
    if (dot) {
      Vec v = Vec::loadu(x + c, C - c);  // zeros past the row
      vs = w ? at::vec::fmadd(v, Vec::loadu(w + c, C - c), vs) : vs + v;
    }
  }
  max_out = at::vec::vec_reduce_all<scalar_t>([](Vec& a, Vec& b) { return at::vec::maximum(a, b); }, vm);
  dot_out = dot ? at::vec::vec_reduce_all<scalar_t>([](Vec& a, Vec& b) { return a + b; }, vs) : scalar_t(0);
}

// four independent accumulators: each exp is a long dependency chain, so several vectors in flight
// keep the FMA units busy
template <typename scalar_t>
inline scalar_t row_sum_exp(const scalar_t* x, int64_t C, scalar_t shift) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t S = Vec::size();
  const Vec vshift(shift);
  Vec s0(0), s1(0), s2(0), s3(0);
  int64_t c = 0;
  for (; c + 4 * S <= C; c += 4 * S) {
    s0 = s0 + fast_exp(Vec::loadu(x + c) - vshift);
    s1 = s1 + fast_exp(Vec::loadu(x + c + S) - vshift);
    s2 = s2 + fast_exp(Vec::loadu(x + c + 2 * S) - vshift);
    s3 = s3 + fast_exp(Vec::loadu(x + c + 3 * S) - vshift);
  }
  for (; c + S <= C; c += S) s0 = s0 + fast_exp(Vec::loadu(x + c) - vshift);
  if (c < C) {
    s1 = s1 + fast_exp(load_tail(x + c, C - c, -std::numeric_limits<scalar_t>::infinity()) - vshift);
  }
  Vec total = (s0 + s1) + (s2 + s3);
  return at::vec::vec_reduce_all<scalar_t>([](Vec& a, Vec& b) { return a + b; }, total);
}

std::tuple<at::Tensor, at::Tensor> cross_entropy_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                     const std::optional<at::Tensor>& weight, int64_t ignore_index,
                                                     double label_smoothing, int64_t reduction) {
  Checked in = check_inputs(logits, target, weight, ignore_index, label_smoothing, reduction);
  const int64_t N = logits.size(0), C = logits.size(1);
  at::Tensor lse = at::empty({N}, logits.options());
  at::Tensor loss = reduction == kNone ? at::empty({N}, logits.options()) : at::empty({}, logits.options());
  const double eps = label_smoothing;

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "cross_entropy_cpu", [&] {
    const scalar_t* x = in.x.const_data_ptr<scalar_t>();
    const int64_t row_stride = in.x.stride(0);
    const int64_t* t = in.target.const_data_ptr<int64_t>();
    const scalar_t* w = in.weight.defined() ? in.weight.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* lse_out = lse.data_ptr<scalar_t>();
    // the reductions sum rows afterwards in a fixed order: deterministic whatever the thread count
    std::vector<double> row_loss(reduction == kNone ? 0 : N);
    scalar_t* none_out = reduction == kNone ? loss.data_ptr<scalar_t>() : nullptr;
    const bool smooth = eps > 0;

    at::parallel_for(0, N, rows_per_task(C), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* row = x + i * row_stride;
        scalar_t m, dot;
        row_max_and_dot(row, w, C, smooth, m, dot);
        // an empty or all -inf row: logsumexp is -inf (shifting by -inf would give NaN)
        const scalar_t l = m == -std::numeric_limits<scalar_t>::infinity() ? m : m + std::log(row_sum_exp(row, C, m));
        lse_out[i] = l;
        double li = 0;
        if (t[i] != ignore_index) {
          const double wt = w ? static_cast<double>(w[t[i]]) : 1.0;
          const double nll = wt * (static_cast<double>(l) - row[t[i]]);
          li = nll;
          if (smooth) {
            const double smooth_term = in.weight_sum * static_cast<double>(l) - static_cast<double>(dot);
            li = (1.0 - eps) * nll + eps / static_cast<double>(C) * smooth_term;
          }
        }
        if (none_out) {
          none_out[i] = static_cast<scalar_t>(li);
        } else {
          row_loss[i] = li;
        }
      }
    });

    if (reduction != kNone) {
      double total = 0;
      for (int64_t i = 0; i < N; ++i) total += row_loss[i];
      // 0 / 0 is NaN for "mean" when every target is ignored (or N is 0), as in PyTorch
      if (reduction == kMean) total = total / in.total_weight;
      loss.fill_(static_cast<scalar_t>(total));
    }
  });
  return {loss, lse};
}

// grad_logits[i, c] = s_i * (A_i * softmax[i, c] - eps / C * w[c]) - s_i * (1 - eps) * w[t_i] * [c == t_i]
// with A_i = (1 - eps) * w[t_i] + eps / C * sum(w), s_i the loss gradient of row i (divided by the
// total weight for "mean"), and a zero row where the target is ignored.
at::Tensor cross_entropy_backward_cpu(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& target,
                                      const std::optional<at::Tensor>& weight, const at::Tensor& lse,
                                      int64_t ignore_index, double label_smoothing, int64_t reduction) {
  Checked in = check_inputs(logits, target, weight, ignore_index, label_smoothing, reduction);
  const int64_t N = logits.size(0), C = logits.size(1);
  kernel_fused::check_cross_entropy_backward(grad, logits, lse, reduction);
  at::Tensor grad_logits = at::empty({N, C}, logits.options());
  if (N == 0 || C == 0) return grad_logits;
  at::Tensor g = grad.to(logits.scalar_type()).contiguous();
  at::Tensor l = lse.contiguous();
  const double eps = label_smoothing;

  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "cross_entropy_backward_cpu", [&] {
    using Vec = Vectorized<scalar_t>;
    constexpr int64_t S = Vec::size();
    const scalar_t* x = in.x.const_data_ptr<scalar_t>();
    const int64_t row_stride = in.x.stride(0);
    const int64_t* t = in.target.const_data_ptr<int64_t>();
    const scalar_t* w = in.weight.defined() ? in.weight.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* lse_in = l.const_data_ptr<scalar_t>();
    const scalar_t* g_in = g.const_data_ptr<scalar_t>();
    scalar_t* out = grad_logits.data_ptr<scalar_t>();
    const double scale = reduction == kMean ? 1.0 / in.total_weight : 1.0;
    const double eps_c = eps / static_cast<double>(C);

    at::parallel_for(0, N, rows_per_task(C), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        scalar_t* o = out + i * C;
        if (t[i] == ignore_index) {
          std::fill(o, o + C, scalar_t(0));
          continue;
        }
        const scalar_t* row = x + i * row_stride;
        const double s = static_cast<double>(g_in[reduction == kNone ? i : 0]) * scale;
        const double wt = w ? static_cast<double>(w[t[i]]) : 1.0;
        const scalar_t sa = static_cast<scalar_t>(s * ((1.0 - eps) * wt + eps_c * in.weight_sum));
        const scalar_t sb = static_cast<scalar_t>(s * eps_c);  // times w[c]
        const scalar_t shift = lse_in[i];
        const Vec vsa(sa), vsb(sb), vshift(shift);
        // the leftover classes as one partial vector (see load_tail), stored partially
        auto row_grad = [&](int64_t c, int64_t count) {
          const Vec p = fast_exp(Vec::loadu(row + c, count) - vshift);
          if (sb == scalar_t(0)) return vsa * p;
          return at::vec::fmsub(vsa, p, w ? vsb * Vec::loadu(w + c, count) : vsb);
        };
        int64_t c = 0;
        for (; c + S <= C; c += S) row_grad(c, S).store(o + c);
        if (c < C) row_grad(c, C - c).store(o + c, C - c);
        o[t[i]] -= static_cast<scalar_t>(s * (1.0 - eps) * wt);
      }
    });
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CPU, m) {
  m.impl("cross_entropy", &cross_entropy_cpu);
  m.impl("cross_entropy_backward", &cross_entropy_backward_cpu);
}
