"""Fake kernels of ``kernel_fused::cross_entropy`` (softmax cross-entropy, F.cross_entropy for (N, C)
scores and class indices) and of its backward operator; the autograd formula is csrc/autograd.cpp."""
from __future__ import annotations

import torch

_NONE = 0  # at::Reduction::None: one loss per row; mean (1) and sum (2) give a scalar


@torch.library.register_fake("kernel_fused::cross_entropy")
def _cross_entropy_fake(logits, target, weight, ignore_index, label_smoothing, reduction):
    torch._check(logits.dim() == 2, lambda: f"cross_entropy: logits must be (N, C), got {logits.dim()} dimensions")
    torch._check(logits.dtype in (torch.float32, torch.float64),
                 lambda: f"cross_entropy: logits must be float32 or float64, got {logits.dtype}")
    torch._check(target.dim() == 1 and target.dtype == torch.int64,
                 lambda: "cross_entropy: target must be (N,) int64 class indices")
    torch._check(target.shape[0] == logits.shape[0], lambda: "cross_entropy: target must have N entries")
    n = logits.shape[0]
    loss = logits.new_empty((n,) if reduction == _NONE else ())
    return loss, logits.new_empty((n,))


@torch.library.register_fake("kernel_fused::cross_entropy_backward")
def _cross_entropy_backward_fake(grad, logits, target, weight, lse, ignore_index, label_smoothing, reduction):
    torch._check(logits.dim() == 2, lambda: "cross_entropy_backward: logits must be (N, C)")
    return logits.new_empty(logits.shape)  # contiguous, as the kernels return it
