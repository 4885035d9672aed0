"""kernel_fused::image_batch: the fake kernels of both overloads (the op takes uint8 images, so it has
no autograd). The CPU kernel is csrc/image_batch.cpp; the reference is kernel.fused.image_batch_reference."""
from __future__ import annotations

import torch


@torch.library.register_fake("kernel_fused::image_batch")
def _image_batch_fake(images, mean, std, flip=None):
    torch._check(images.dtype == torch.uint8, lambda: f"image_batch: images must be uint8, got {images.dtype}")
    torch._check(images.dim() == 4, lambda: f"image_batch: images must be (N, H, W, C), got {tuple(images.shape)}")
    n, h, w, c = images.shape
    return images.new_empty((n, c, h, w), dtype=torch.float32)


@torch.library.register_fake("kernel_fused::image_batch.list")
def _image_batch_list_fake(images, mean, std, flip=None):
    if not images:  # as the kernel: (0, C, 0, 0); the op then dispatches on flip, the only tensor
        return flip.new_empty((0, max(len(mean), len(std)), 0, 0), dtype=torch.float32)
    first = images[0]
    torch._check(first.dim() == 3, lambda: f"image_batch: images[0] must be (H, W, C), got {tuple(first.shape)}")
    h, w, c = first.shape
    return first.new_empty((len(images), c, h, w), dtype=torch.float32)
