"""The layer a layer method attributes at: named by the user, or found by what the method needs.

Grad-CAM wants the last convolution; attributions of token ids go through the embedding (ids
cannot be differentiated). An ``nn.EmbeddingBag`` pools its tokens inside one module, so it has no
per-token output to attribute: :func:`per_token` makes it look up then pool in two visible steps,
with the same result, while the attribution runs.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from kernel import KernelError, did_you_mean

#: what a method may ask for, and the modules that answer
WANTED = {
    "convolution": ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "last"),
    "embedding": ((nn.Embedding, nn.EmbeddingBag), "first"),
}


#: Grad-CAM's map is as coarse as its layer's output: a deep network's last convolution on a small
#: input (resnet18 on 32x32: 1x1) gives one number, the same colour everywhere. The default layer is
#: the last convolution whose map has at least this many positions along each spatial axis.
MIN_MAP = 4


def find_layer(model: nn.Module, wanted: str | None, name: str | None, method: str,
               sizes: dict | None = None) -> tuple[str, nn.Module]:
    """``(dotted name, module)``: the one named, else the method's kind of layer. ``sizes`` (layer
    name -> spatial size of its output, :func:`output_sizes`) lets the last convolution whose map
    is too coarse give way to an earlier one."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if name:
        if name not in modules:
            raise KernelError(f"--layer {name!r}: the model has no such layer{did_you_mean(name, list(modules))}; "
                              f"its layers: {_some(modules)}")
        return name, modules[name]
    types, which = WANTED.get(wanted or "", ((), "last"))
    found = [(n, m) for n, m in modules.items() if isinstance(m, types)]
    if not found:
        what = wanted or "layer"
        raise KernelError(f"{method} needs a {what} layer and the model ({type(model).__name__}) has none; "
                          f"name one with --layer (its layers: {_some(modules)})")
    if which == "first":
        return found[0]
    if sizes:
        fine = [(n, m) for n, m in found if sizes.get(n) and min(sizes[n]) >= MIN_MAP]
        if fine:
            return fine[-1]
    return found[-1]


def output_sizes(model: nn.Module, run) -> tuple[dict, object]:
    """The spatial size of each convolution's output while ``run()`` calls the model once, and what
    ``run()`` returned."""
    sizes, hooks = {}, []

    def record(name):
        def hook(_module, _inputs, output):  # returns None: the output is left as it is
            sizes.setdefault(name, tuple(output.shape[2:]))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, WANTED["convolution"][0]):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        result = run()
    finally:
        for h in hooks:
            h.remove()
    return sizes, result


def _some(modules: dict, limit: int = 12) -> str:
    names = list(modules)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class _Tokens(nn.Identity):
    """The per-token embeddings of a bag, as a module a layer method can hook."""


@contextlib.contextmanager
def per_token(layer: nn.Module):
    """While open, an ``nn.EmbeddingBag`` given 2-D ids looks each token up through a child module
    (yielded: the layer to attribute, its output ``(batch, tokens, dim)``) and pools afterwards, as
    the bag itself would (padding ids left out). Any other layer is yielded as it is."""
    if not isinstance(layer, nn.EmbeddingBag) or layer.mode not in ("mean", "sum", "max"):
        yield layer
        return
    tokens = _Tokens()

    def forward(input, offsets=None, per_sample_weights=None):
        if input.ndim != 2 or offsets is not None or per_sample_weights is not None:
            return type(layer).forward(layer, input, offsets, per_sample_weights)
        vectors = tokens(nn.functional.embedding(input, layer.weight, max_norm=layer.max_norm))
        keep = torch.ones_like(input, dtype=vectors.dtype) if layer.padding_idx is None else \
            (input != layer.padding_idx).to(vectors.dtype)
        vectors = vectors * keep.unsqueeze(-1)
        if layer.mode == "sum":
            return vectors.sum(1)
        if layer.mode == "max":
            return vectors.masked_fill(keep.unsqueeze(-1) == 0, float("-inf")).amax(1).nan_to_num(0.0, 0.0, 0.0)
        return vectors.sum(1) / keep.sum(1, keepdim=True).clamp(min=1)

    layer.forward = forward  # on this instance only, and put back below
    try:
        yield tokens
    finally:
        del layer.forward


def to_input_form(attribution: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A layer's attribution in the input's terms, where the shapes allow it:
    ``(N, L, D)`` per token for ids ``(N, L)`` -> ``(N, L)``; a map ``(N, C, *s)`` with the
    input's spatial rank -> channels summed, stretched to the input's size ``(N, 1, *S)``;
    anything else keeps its own shape (channels summed)."""
    a = attribution.detach()
    if not x.dtype.is_floating_point and x.ndim == 2 and a.ndim == 3 and a.shape[:2] == x.shape:
        return a.sum(-1)
    if a.ndim >= 3 and a.ndim == x.ndim:
        a = a.sum(1, keepdim=True)
        if tuple(a.shape[2:]) != tuple(x.shape[2:]):
            mode = {3: "linear", 4: "bilinear", 5: "trilinear"}[a.ndim]
            a = nn.functional.interpolate(a, size=tuple(x.shape[2:]), mode=mode, align_corners=False)
        return a
    if a.ndim >= 3:
        return a.sum(1, keepdim=True)
    return a
