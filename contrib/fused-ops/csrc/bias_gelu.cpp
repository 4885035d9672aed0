// kernel_fused::bias_gelu and bias_gelu_backward (CPU): gelu(x + bias), bias broadcast over x's last
// dimension, without the x + bias intermediate; the backward gives grad_x and grad_bias in one pass.
//
// The formulas are PyTorch's own (ATen's GeluKernel, vectorised path), so the results agree with
// F.gelu(x + bias) to rounding. Rows of x are split over threads; each row is a Vectorized loop over the
// last dimension (bias is read from cache every row).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace {

using at::vec::Vectorized;

enum class Approximation { Erf, Tanh };

Approximation parse_approximate(c10::string_view approximate) {
  if (approximate == "none") return Approximation::Erf;
  TORCH_CHECK(approximate == "tanh", "bias_gelu: approximate must be \"none\" or \"tanh\", got \"",
              std::string(approximate), "\"");
  return Approximation::Tanh;
}

void check_inputs(const at::Tensor& x, const at::Tensor& bias) {
  TORCH_CHECK(x.dim() >= 1, "bias_gelu: x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(bias.dim() == 1, "bias_gelu: bias must have 1 dimension, got shape ", bias.sizes());
  TORCH_CHECK(x.size(-1) == bias.size(0), "bias_gelu: x's last dimension (", x.size(-1),
              ") must equal bias's length (", bias.size(0), ")");
  TORCH_CHECK(x.scalar_type() == bias.scalar_type(), "bias_gelu: x and bias must have one dtype, got ",
              x.scalar_type(), " and ", bias.scalar_type());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bias_gelu: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(x.device().is_cpu() && bias.device().is_cpu(), "bias_gelu: x and bias must be on the CPU, got ",
              x.device(), " and ", bias.device());
}

// Rows per task: about 32K elements, GELU being a few dozen flops each.
int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(width, 1)); }

template <typename T>
struct Gelu {
  using Vec = Vectorized<T>;
  // the constants as ATen's GeluKernel names them
  static constexpr T kAlpha = M_SQRT1_2;                       // erf's argument scale
  static constexpr T kErfBeta = M_2_SQRTPI * M_SQRT1_2 * 0.5;  // 1 / sqrt(2 pi): the normal pdf's scale
  static constexpr T kTanhBeta = M_SQRT2 * M_2_SQRTPI * 0.5;   // sqrt(2 / pi)
  static constexpr T kKappa = 0.044715;

  template <Approximation A>
  static Vec forward(Vec x) {
    const Vec half(0.5), one(1);
    if constexpr (A == Approximation::Erf) {
      return x * half * (one + (x * Vec(kAlpha)).erf());
    } else {
      const Vec inner = Vec(kTanhBeta) * (x + Vec(kKappa) * (x * x * x));
      return half * x * (one + inner.tanh());
    }
  }

  // d gelu(x) / dx
  template <Approximation A>
  static Vec derivative(Vec x) {
    const Vec half(0.5), one(1);
    if constexpr (A == Approximation::Erf) {
      const Vec cdf = half * (one + (x * Vec(kAlpha)).erf());
      const Vec pdf = Vec(kErfBeta) * (x * x * Vec(-0.5)).exp();
      return cdf + x * pdf;
    } else {
      const Vec x_sq = x * x;
      const Vec tanh_inner = (Vec(kTanhBeta) * (x + Vec(kKappa) * (x_sq * x))).tanh();
      const Vec left = half * x, right = one + tanh_inner;
      const Vec tanh_derivative = one - tanh_inner * tanh_inner;
      const Vec inner_derivative = Vec(kTanhBeta) * (one + Vec(3) * Vec(kKappa) * x_sq);
      return half * right + left * tanh_derivative * inner_derivative;
    }
  }
};

template <typename T, Approximation A>
void forward_rows(const T* x, const T* bias, T* out, int64_t rows, int64_t width) {
  using Vec = Vectorized<T>;
  at::parallel_for(0, rows, row_grain(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * width;
      T* outr = out + r * width;
      int64_t j = 0;
      for (; j + Vec::size() <= width; j += Vec::size())
        Gelu<T>::template forward<A>(Vec::loadu(xr + j) + Vec::loadu(bias + j)).store(outr + j);
      if (j < width) {
        const int64_t rest = width - j;
        Gelu<T>::template forward<A>(Vec::loadu(xr + j, rest) + Vec::loadu(bias + j, rest)).store(outr + j, rest);
      }
    }
  });
}

// grad_x = grad * gelu'(x + bias) row by row; grad_bias = the column sums of grad_x. Rows are cut into
// one block per thread, each summing its rows into its own partial row; the partials are then added in
// block order, so the result depends on the thread count only, never on scheduling.
template <typename T, Approximation A>
void backward_rows(const T* grad, const T* x, const T* bias, T* grad_x, T* grad_bias, int64_t rows, int64_t width) {
  using Vec = Vectorized<T>;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(),
                                                                (rows + row_grain(width) - 1) / row_grain(width)));
  const int64_t rows_per_block = (rows + blocks - 1) / blocks;
  std::vector<T> partial(static_cast<size_t>(blocks * width), T(0));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      T* sum = partial.data() + block * width;
      const int64_t last = std::min(rows, (block + 1) * rows_per_block);
      for (int64_t r = block * rows_per_block; r < last; ++r) {
        const int64_t offset = r * width;
        int64_t j = 0;
        for (; j + Vec::size() <= width; j += Vec::size()) {
          const Vec g = Vec::loadu(grad + offset + j) *
                        Gelu<T>::template derivative<A>(Vec::loadu(x + offset + j) + Vec::loadu(bias + j));
          g.store(grad_x + offset + j);
          (Vec::loadu(sum + j) + g).store(sum + j);
        }
        if (j < width) {
          const int64_t rest = width - j;
          const Vec g = Vec::loadu(grad + offset + j, rest) *
                        Gelu<T>::template derivative<A>(Vec::loadu(x + offset + j, rest) + Vec::loadu(bias + j, rest));
          g.store(grad_x + offset + j, rest);
          (Vec::loadu(sum + j, rest) + g).store(sum + j, rest);
        }
      }
    }
  });
  std::copy(partial.begin(), partial.begin() + width, grad_bias);
  for (int64_t block = 1; block < blocks; ++block)
    for (int64_t j = 0; j < width; ++j) grad_bias[j] += partial[block * width + j];
}

at::Tensor bias_gelu_cpu(const at::Tensor& x, const at::Tensor& bias, c10::string_view approximate) {
  check_inputs(x, bias);
  const Approximation mode = parse_approximate(approximate);
  const at::Tensor xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const int64_t width = x.size(-1);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_gelu", [&] {
    const auto run = mode == Approximation::Erf ? forward_rows<scalar_t, Approximation::Erf>
                                                : forward_rows<scalar_t, Approximation::Tanh>;
    run(xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
        out.numel() / width, width);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> bias_gelu_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                          const at::Tensor& bias, c10::string_view approximate) {
  check_inputs(x, bias);
  const Approximation mode = parse_approximate(approximate);
  TORCH_CHECK(grad.sizes() == x.sizes(), "bias_gelu_backward: grad must have x's shape ", x.sizes(), ", got ",
              grad.sizes());
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "bias_gelu_backward: grad must have x's dtype ",
              x.scalar_type(), ", got ", grad.scalar_type());
  const at::Tensor gc = grad.contiguous(), xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_bias = at::zeros({bias.size(0)}, bias.options());
  const int64_t width = x.size(-1);
  if (grad_x.numel() == 0) return {grad_x, grad_bias};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_gelu_backward", [&] {
    const auto run = mode == Approximation::Erf ? backward_rows<scalar_t, Approximation::Erf>
                                                : backward_rows<scalar_t, Approximation::Tanh>;
    run(gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
        grad_x.mutable_data_ptr<scalar_t>(), grad_bias.mutable_data_ptr<scalar_t>(), grad_x.numel() / width, width);
  });
  return {grad_x, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, CPU, m) {
  m.impl("bias_gelu", &bias_gelu_cpu);
  m.impl("bias_gelu_backward", &bias_gelu_backward_cpu);
}
