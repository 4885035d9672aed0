"""Fused operators: the C++/CUDA kernels of ``kernel-fused-ops`` when installed, pure PyTorch otherwise.

Each operator here has a reference written in plain PyTorch (``*_reference``), which is the
definition of what it computes, and a function that plugins call. The function takes the fused
kernel, looked up as ``torch.ops.kernel_fused.<name>``, when the operator library is installed,
has a kernel for the input's device and takes its dtype; otherwise the reference. No plugin
imports the extension: the kernel loads it once (``import kernel_fused_ops`` registers the
operators with ``torch.library``) and everything else goes through ``torch.ops``.

``KERNEL_DISABLE_PLUGINS=fused_ops`` (or ``kernel -p no:fused_ops ...``) keeps the library unloaded, so the
references run even where it is installed: the way to compare the two on one machine.

The fused kernels are left out while a model is exported or scripted (an ONNX or TorchScript file
must not depend on this library); ``torch.compile`` sees them as operators with fake kernels.
"""
from __future__ import annotations

import importlib
import importlib.util

import torch
import torch.nn.functional as F

from .plugins import FUSED_DISTRIBUTION as DISTRIBUTION, FUSED_PACKAGE as PACKAGE, FUSED_SWITCH as SWITCH

NAMESPACE = "kernel_fused"
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}  # ATen's at::Reduction values

_state: dict = {}


# -- loading ---------------------------------------------------------------------------------------------
def _disabled() -> bool:
    from .plugins import disabled_names

    return SWITCH in disabled_names()


def library_error() -> str | None:
    """Why the installed library could not be loaded (None when it loaded or is not installed)."""
    _load()
    return _state.get("error")


def _load() -> bool:
    """Import the operator library once; False when it is absent, turned off or broken."""
    if "loaded" in _state:
        return _state["loaded"]
    _state["loaded"] = False
    if _disabled() or importlib.util.find_spec(PACKAGE) is None:
        return False
    try:
        importlib.import_module(PACKAGE)
    except Exception as exc:  # an extension built against another torch, a missing symbol: use the references
        _state["error"] = f"{type(exc).__name__}: {exc}"
        import warnings

        warnings.warn(f"{DISTRIBUTION} is installed but could not be loaded ({_state['error']}); the pure "
                      f"PyTorch references run instead. Rebuild it: pip install contrib/fused-ops", stacklevel=3)
        return False
    _state["loaded"] = True
    return True


def op(name: str):
    """``torch.ops.kernel_fused.<name>``, or None when the library is not loaded or lacks the operator."""
    if not _load():
        return None
    try:
        return getattr(getattr(torch.ops, NAMESPACE), name)
    except (AttributeError, RuntimeError):
        return None


def has_kernel(name: str, device: torch.device | str) -> bool:
    """Whether the operator is loaded with a kernel for this device type (cpu, cuda)."""
    return _has_kernel(name, torch.device(device).type)


_KERNELS: dict = {}


@torch.compiler.assume_constant_result  # torch.compile takes the answer as a constant, not a graph break
def _has_kernel(name: str, device_type: str) -> bool:
    found = _KERNELS.get((name, device_type))
    if found is None:  # asked on every call: the dispatcher's table is read once per operator and device
        key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
        found = _KERNELS[(name, device_type)] = op(name) is not None and key is not None and \
            torch._C._dispatch_has_kernel_for_dispatch_key(f"{NAMESPACE}::{name}", key)
    return found


@torch.compiler.assume_constant_result  # read outside the trace: dynamo itself answers True while compiling
def _exporting() -> bool:
    return torch.compiler.is_exporting()


def _usable(name: str, tensor: torch.Tensor) -> bool:
    """The fused kernel applies: loaded, a kernel for the tensor's device, and no export or tracing
    (an exported file must not depend on this library)."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or _exporting():
        return False
    return _has_kernel(name, tensor.device.type)


# -- image batch to model input ------------------------------------------------------------------------------
def image_batch_reference(images: torch.Tensor, mean, std, flip: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images (N, H, W, C), any strides, to float32 (N, C, H, W): ``(x / 255 - mean) / std``,
    the samples where ``flip`` (bool, (N,)) is True mirrored left to right."""
    x = images.permute(0, 3, 1, 2).to(torch.float32).div(255.0)
    if flip is not None:
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous()


def image_batch(images, mean, std, flip: torch.Tensor | None = None) -> torch.Tensor:
    """A batch of uint8 images, (N, H, W, C) or a list of (H, W, C) of one size, to normalised float32
    (N, C, H, W), optionally mirrored per sample; one pass over memory with the fused kernel."""
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if isinstance(images, (list, tuple)):
        if images and images[0].dtype == torch.uint8 and _usable("image_batch", images[0]):
            return op("image_batch").list(list(images), mean, std, flip)
        images = torch.stack(list(images)) if images else torch.empty(0, 0, 0, len(mean), dtype=torch.uint8)
    if images.dtype == torch.uint8 and _usable("image_batch", images):
        return op("image_batch").default(images, mean, std, flip)
    return image_batch_reference(images, mean, std, flip)


# -- softmax cross-entropy -----------------------------------------------------------------------------------
def cross_entropy_reference(logits, target, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                            reduction: str = "mean"):
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, reduction=reduction)


def cross_entropy(logits, target, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean"):
    """``F.cross_entropy`` for (N, C) scores and class-index targets, forward and backward fused (the
    log-probabilities are never stored); other shapes, probability targets and class weights that
    are themselves trained take the reference."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")  # F.cross_entropy's words
    if (logits.ndim == 2 and target.ndim == 1 and target.dtype == torch.int64
            and logits.dtype in (torch.float32, torch.float64) and (weight is None or not weight.requires_grad)
            and _usable("cross_entropy", logits)):
        loss, _ = op("cross_entropy").default(logits, target, weight, int(ignore_index), float(label_smoothing),
                                               REDUCTIONS[reduction])
        return loss
    return cross_entropy_reference(logits, target, weight, ignore_index, label_smoothing, reduction)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` with the same parameters, computed by :func:`cross_entropy`."""

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, self.ignore_index, self.label_smoothing, self.reduction)


# -- bias + GELU --------------------------------------------------------------------------------------------
def bias_gelu_reference(x, bias, approximate: str = "none"):
    return F.gelu(x + bias, approximate=approximate)


def bias_gelu(x, bias, approximate: str = "none"):
    """``gelu(x + bias)`` over the last dimension (``approximate``: "none" or "tanh"), forward and
    backward in one pass each."""
    if x.dtype in (torch.float32, torch.float64) and bias.dtype == x.dtype and _usable("bias_gelu", x):
        return op("bias_gelu").default(x, bias, approximate)
    return bias_gelu_reference(x, bias, approximate)


# -- masked mean of embeddings -------------------------------------------------------------------------------
def masked_mean_embedding_reference(weight, indices, padding_mask):
    """The mean of ``weight[indices]`` over each row's positions where ``padding_mask`` is False;
    zeros for a row with none."""
    keep = (~padding_mask).unsqueeze(-1).to(weight.dtype)
    summed = (F.embedding(indices, weight) * keep).sum(dim=1)
    return summed / keep.sum(dim=1).clamp(min=1)


def masked_mean_embedding(weight, indices, padding_mask):
    """(N, L) token ids and their padding mask (True at padding) to (N, D) mean embeddings, without
    the (N, L, D) intermediate the reference makes."""
    if weight.dtype in (torch.float32, torch.float64) and _usable("masked_mean_embedding", weight):
        return op("masked_mean_embedding").default(weight, indices.long(), padding_mask.bool())
    return masked_mean_embedding_reference(weight, indices, padding_mask)


class EmbeddingBag(torch.nn.EmbeddingBag):
    """``torch.nn.EmbeddingBag``; a mean over (N, L) ids, the bags being the rows and ``padding_idx``
    left out, goes through :func:`masked_mean_embedding` where the fused kernel is loaded (the module
    is still the one hooks and attribution methods see). ``max_norm``, ``scale_grad_by_freq``,
    ``sparse``, offsets and per-sample weights take nn.EmbeddingBag's own path."""

    def forward(self, input, offsets=None, per_sample_weights=None):
        if (input.ndim == 2 and offsets is None and per_sample_weights is None and self.mode == "mean"
                and self.max_norm is None and not self.scale_grad_by_freq and not self.sparse
                and _usable("masked_mean_embedding", self.weight)):
            padding = input == self.padding_idx if self.padding_idx is not None else \
                torch.zeros_like(input, dtype=torch.bool)
            return masked_mean_embedding(self.weight, input, padding)
        return super().forward(input, offsets, per_sample_weights)
