"""Fake kernels of kernel_fused::bias_gelu and its backward (for torch.compile and meta tensors).
The CPU kernels are csrc/bias_gelu.cpp, the autograd formula csrc/autograd.cpp; the reference is
kernel.fused.bias_gelu_reference."""
from __future__ import annotations

import torch


@torch.library.register_fake("kernel_fused::bias_gelu")
def _bias_gelu_fake(x, bias, approximate):
    torch._check(x.dim() >= 1 and bias.dim() == 1 and x.shape[-1] == bias.shape[0],
                 lambda: f"bias_gelu: x's last dimension must equal bias's length, got {tuple(x.shape)} and "
                         f"{tuple(bias.shape)}")
    return x.new_empty(x.shape)  # contiguous, as the kernel's output


@torch.library.register_fake("kernel_fused::bias_gelu_backward")
def _bias_gelu_backward_fake(grad, x, bias, approximate):
    return x.new_empty(x.shape), bias.new_empty(bias.shape)
