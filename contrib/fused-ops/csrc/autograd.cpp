// Autograd of the differentiable operators, in C++: the forward operator's kernel for the Autograd
// key records a node whose backward calls the backward operator. (torch.library.register_autograd
// does the same from Python, at about 25 us a call: more than a whole small step's loss costs.)
// Below this key the device kernels run; under torch.compile the fake kernels do.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename Signature>
c10::TypedOperatorHandle<Signature> find(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

std::optional<at::Tensor> optional(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// -- cross_entropy ---------------------------------------------------------------------------------
using CrossEntropy = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                        const std::optional<at::Tensor>&, int64_t, double, int64_t);
using CrossEntropyBackward = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const std::optional<at::Tensor>&, const at::Tensor&, int64_t, double, int64_t);

struct CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const std::optional<at::Tensor>& weight, int64_t ignore_index, double smoothing,
                               int64_t reduction) {
    static auto op = find<CrossEntropy>("kernel_fused::cross_entropy");
    at::AutoDispatchBelowADInplaceOrView below;
    auto [loss, lse] = op.call(logits, target, weight, ignore_index, smoothing, reduction);
    ctx->save_for_backward({logits, target, weight.value_or(at::Tensor()), lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["smoothing"] = smoothing;
    ctx->saved_data["reduction"] = reduction;
    ctx->mark_non_differentiable({lse});  // bookkeeping for the backward, not a result
    return {loss, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = find<CrossEntropyBackward>("kernel_fused::cross_entropy_backward");
    auto saved = ctx->get_saved_variables();
    at::Tensor grad_logits = op.call(grads[0], saved[0], saved[1], optional(saved[2]), saved[3],
                                     ctx->saved_data["ignore_index"].toInt(),
                                     ctx->saved_data["smoothing"].toDouble(), ctx->saved_data["reduction"].toInt());
    // no gradient for the targets (integers) or the class weights (kernel.fused sends trained
    // weights to the reference)
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> cross_entropy_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                          const std::optional<at::Tensor>& weight, int64_t ignore_index,
                                                          double smoothing, int64_t reduction) {
  auto out = CrossEntropyFunction::apply(logits, target, weight, ignore_index, smoothing, reduction);
  return {out[0], out[1]};
}

// -- bias_gelu -------------------------------------------------------------------------------------
using BiasGelu = at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view);
using BiasGeluBackward = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            c10::string_view);

struct BiasGeluFunction : public torch::autograd::Function<BiasGeluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias,
                            c10::string_view approximate) {
    static auto op = find<BiasGelu>("kernel_fused::bias_gelu");
    at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({x, bias});
    ctx->saved_data["approximate"] = std::string(approximate);
    return op.call(x, bias, approximate);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = find<BiasGeluBackward>("kernel_fused::bias_gelu_backward");
    auto saved = ctx->get_saved_variables();
    auto approximate = ctx->saved_data["approximate"].toStringRef();
    auto [grad_x, grad_bias] = op.call(grads[0], saved[0], saved[1], approximate);
    return {ctx->needs_input_grad(0) ? grad_x : at::Tensor(), ctx->needs_input_grad(1) ? grad_bias : at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor bias_gelu_autograd(const at::Tensor& x, const at::Tensor& bias, c10::string_view approximate) {
  return BiasGeluFunction::apply(x, bias, approximate);
}

// -- masked_mean_embedding ---------------------------------------------------------------------------
using MaskedMean = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);
using MaskedMeanBackward = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::SymInt);

struct MaskedMeanFunction : public torch::autograd::Function<MaskedMeanFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& indices,
                            const at::Tensor& padding_mask) {
    static auto op = find<MaskedMean>("kernel_fused::masked_mean_embedding");
    at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({indices, padding_mask});
    ctx->saved_data["num_weights"] = weight.sym_size(0);
    return op.call(weight, indices, padding_mask);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto op = find<MaskedMeanBackward>("kernel_fused::masked_mean_embedding_backward");
    auto saved = ctx->get_saved_variables();
    return {op.call(grads[0], saved[0], saved[1], ctx->saved_data["num_weights"].toSymInt()), at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor masked_mean_embedding_autograd(const at::Tensor& weight, const at::Tensor& indices,
                                          const at::Tensor& padding_mask) {
  return MaskedMeanFunction::apply(weight, indices, padding_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(kernel_fused, Autograd, m) {
  m.impl("cross_entropy", &cross_entropy_autograd);
  m.impl("bias_gelu", &bias_gelu_autograd);
  m.impl("masked_mean_embedding", &masked_mean_embedding_autograd);
}
