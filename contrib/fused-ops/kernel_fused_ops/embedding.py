"""Fake kernels of ``kernel_fused::masked_mean_embedding`` (the mean of embedding rows over each
sequence's non-padding tokens) and of its backward operator; the autograd formula is csrc/autograd.cpp."""
from __future__ import annotations

import torch


@torch.library.register_fake("kernel_fused::masked_mean_embedding")
def _masked_mean_embedding_fake(weight, indices, padding_mask):
    torch._check(weight.dim() == 2, lambda: f"masked_mean_embedding: weight must be (V, D), got {weight.dim()} dims")
    torch._check(weight.dtype in (torch.float32, torch.float64),
                 lambda: f"masked_mean_embedding: weight must be float32 or float64, got {weight.dtype}")
    torch._check(indices.dim() == 2 and indices.dtype == torch.int64,
                 lambda: "masked_mean_embedding: indices must be (N, L) int64")
    torch._check(padding_mask.dtype == torch.bool and padding_mask.shape == indices.shape,
                 lambda: "masked_mean_embedding: padding_mask must be bool with the shape of indices")
    return weight.new_empty((indices.shape[0], weight.shape[1]))


@torch.library.register_fake("kernel_fused::masked_mean_embedding_backward")
def _masked_mean_embedding_backward_fake(grad, indices, padding_mask, num_weights):
    torch._check(grad.dim() == 2, lambda: "masked_mean_embedding_backward: grad must be (N, D)")
    return grad.new_empty((num_weights, grad.shape[1]))
