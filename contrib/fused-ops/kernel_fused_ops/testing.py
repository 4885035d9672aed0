"""Helpers for the operators' tests (tests/ and third-party code that checks a build)."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

NO_CUDA = "no CUDA device here: the CUDA kernels are tested where one is (see docs/fused-ops.md)"


def devices(name: str) -> list:
    """pytest parameters for the devices to test operator ``name`` on: cpu, and cuda (skipped,
    saying why, where there is no GPU or the library was built without CUDA kernels)."""
    from kernel import fused

    cuda_ready = torch.cuda.is_available() and fused.has_kernel(name, "cuda")
    reason = NO_CUDA if not torch.cuda.is_available() else "the library was built without CUDA kernels"
    return ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_ready, reason=reason)])]


class OpRecorder(TorchDispatchMode):
    """The operators a piece of code runs, as 'namespace.name.overload' (to see which kernel ran)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))
