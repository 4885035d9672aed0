"""Fused operators for kernel, registered with torch.library in the ``kernel_fused`` namespace.

Importing this package loads the compiled library (``_C``: the schemas, the device kernels and
the autograd formulas) and registers each operator's fake kernel (for torch.compile and meta tensors). Plugins do not import it: the
kernel does, in ``kernel.fused``, and they reach the operators through ``torch.ops.kernel_fused``.
The pure-PyTorch references are ``kernel.fused.*_reference``.
"""
from __future__ import annotations

import json
import os

import torch  # noqa: F401  (the library links against torch's, which must be loaded first)

from . import _C  # noqa: F401  (registers the schemas and the device kernels)
from . import embedding, gelu, image, loss  # noqa: F401,E402  (fake kernels)

__version__ = "0.1.0"


def build_info() -> dict:
    """What this copy was built with: its device kernels, torch and CUDA versions, CPU flags."""
    with open(os.path.join(os.path.dirname(__file__), "build.json"), encoding="utf-8") as f:
        return json.load(f)
