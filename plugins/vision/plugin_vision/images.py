"""One picture format for the whole plugin: float32 tensors shaped (C, H, W) with values in [0, 1].

Datasets hand out PIL images, NumPy arrays or uint8 tensors depending on where they come from;
converting them here, once, means a user never has to spell ``ToImage`` + ``ToDtype``.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

#: PIL modes whose raw values are not colours (palette indices, other colour spaces): made RGB(A) first.
_CONVERT_MODES = {"P": "RGBA", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "1": "L"}
_SCALE = {torch.uint8: 255.0, torch.int16: 32767.0, torch.int32: 65535.0, torch.uint16: 65535.0}


def is_pil(x) -> bool:
    """A PIL image? (Tensors have ``mode`` and ``size`` too, as methods: duck typing cannot tell.)"""
    image = sys.modules.get("PIL.Image")  # no PIL loaded: it cannot be a PIL image
    return image is not None and isinstance(x, image.Image)


def to_image(x) -> torch.Tensor:
    """A PIL image, an (H, W[, C]) array or a (C, H, W) tensor as float32 (C, H, W) in [0, 1]."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        if t.ndim == 3 and t.shape[-1] in (1, 3, 4):
            t = t.permute(2, 0, 1)  # arrays are (H, W, C), as NumPy, PIL and OpenCV keep them
    elif is_pil(x):
        from torchvision.transforms.v2.functional import pil_to_tensor

        if x.mode in _CONVERT_MODES:
            mode = _CONVERT_MODES[x.mode]
            if x.mode == "P" and "transparency" not in x.info:
                mode = "RGB"
            x = x.convert(mode)
        t = pil_to_tensor(x)
    else:
        raise TypeError(f"not an image: {type(x).__name__}")
    if t.ndim == 2:
        t = t.unsqueeze(0)
    return as_float(t)


def as_float(t: torch.Tensor) -> torch.Tensor:
    """Integer pixels scaled to [0, 1]; float pixels kept as they are (made float32)."""
    if t.dtype == torch.float32:
        return t
    if t.is_floating_point():
        return t.float()
    if t.dtype == torch.bool:
        return t.float()
    scale = _SCALE.get(t.dtype)
    return t.float().div_(scale) if scale else t.float()


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    """float [0, 1] pixels as uint8 (for the few transforms that only take bytes)."""
    if t.dtype == torch.uint8:
        return t
    return (t.clamp(0, 1) * 255).round_().to(torch.uint8)
