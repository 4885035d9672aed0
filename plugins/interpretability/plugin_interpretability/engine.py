"""Attributions for one batch of one model: the method, the layer, the target classes, the
baseline and the internal batch size are settled here, then Captum does the work.

The internal batch size (how many of the method's evaluations go through the model at once) is
chosen from the model's memory use: one sample's activations are measured with forward hooks, and
as many samples go at once as fit in :data:`MEMORY` bytes counting the backward pass. A small
model takes every evaluation in one pass (as Captum called by hand does); a large one is bounded.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from kernel import KernelError, did_you_mean

from .layers import find_layer, output_sizes, per_token, to_input_form
from .methods import Context
from .model_inputs import Forward, lengths_of

#: the memory the activations of one internal batch may take, forward and backward (bytes)
MEMORY = 1 << 30
#: the backward pass keeps the forward's activations and makes gradients of the same size. Measured
#: (benchmarks/explain.py) the real peak is about a third of the budget: this errs on the safe side,
#: and on a CPU a few passes of ~500 evaluations are faster than one of thousands anyway
BACKWARD_FACTOR = 3


@dataclass
class Attributions:
    """One batch explained: ``attributions`` in the input's terms (``x``'s shape, or a layer's map),
    ``targets`` the explained classes, ``outputs`` the model's class scores, ``lengths`` each
    sample's length without padding (token ids), ``layer`` the layer's name for a layer method."""

    attributions: torch.Tensor
    x: torch.Tensor
    targets: torch.Tensor
    outputs: torch.Tensor
    lengths: list
    layer: str | None
    internal_batch_size: int


def resolve_targets(target, outputs: torch.Tensor, labels=None, classes=None) -> torch.Tensor:
    """The class each sample is explained for: ``"predicted"``, ``"true"`` (needs ``labels``), a
    class index or a class name."""
    n, num_classes = outputs.shape
    if target in (None, "predicted"):
        return outputs.argmax(1)
    if target == "true":
        if labels is None:
            raise KernelError("--target true needs the samples' labels; these inputs have none "
                              "(use --target predicted or a class)")
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.numel() != n or labels.dtype.is_floating_point:
            raise KernelError("--target true needs one class label per sample; this dataset's targets are not classes")
        return labels.long()
    if isinstance(target, torch.Tensor):
        index = target.long().reshape(-1)
    else:
        index = _class_index(target, classes)
        index = torch.full((n,), index, dtype=torch.long)
    bad = index[(index < 0) | (index >= num_classes)]
    if bad.numel():
        raise KernelError(f"target class {int(bad[0])} is out of range: the model has {num_classes} classes "
                          f"(0-{num_classes - 1})")
    return index


def _class_index(target, classes) -> int:
    text = str(target)
    if text.lstrip("-").isdigit():
        return int(text)
    names = [str(c) for c in classes or []]
    if text in names:
        return names.index(text)
    raise KernelError(f"--target {text!r} is not 'predicted', 'true', a class index or a class name"
                      + (did_you_mean(text, names) if names else "")
                      + (f"; classes: {', '.join(names[:20])}" if names else ""))


#: the baselines a method's ``baseline`` parameter names
BASELINES = ("zero", "blur", "uniform")


def baseline_for(x: torch.Tensor, facts: dict, kind: str = "zero") -> torch.Tensor:
    """The "absent" input a method compares with: ``zero`` (zeros: the mean input after a
    normalisation; the padding id for tokens), ``blur`` (the input at an eighth of its resolution:
    its shapes without their detail) or ``uniform`` (noise over the input's range, seeded)."""
    if kind not in BASELINES:
        raise KernelError(f"baseline {kind!r} is not one of {', '.join(BASELINES)}{did_you_mean(str(kind), BASELINES)}")
    if not x.dtype.is_floating_point:
        if kind != "zero":
            raise KernelError(f"baseline {kind!r} needs floating-point inputs; token ids take the padding "
                              f"token as their baseline (baseline \"zero\")")
        pad = facts.get("padding_idx")
        return torch.full_like(x, int(pad) if pad is not None else 0)
    if kind == "uniform":
        generator = torch.Generator(device=x.device).manual_seed(0)
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x.amin() + noise * (x.amax() - x.amin())
    if kind == "blur" and x.ndim >= 3:
        spatial = tuple(x.shape[2:])
        coarse = tuple(max(1, s // 8) for s in spatial)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(spatial))
        if mode:
            pooled = torch.nn.functional.adaptive_avg_pool1d(x, coarse) if len(spatial) == 1 else (
                torch.nn.functional.adaptive_avg_pool2d(x, coarse) if len(spatial) == 2 else
                torch.nn.functional.adaptive_avg_pool3d(x, coarse))
            return torch.nn.functional.interpolate(pooled, size=spatial, mode=mode, align_corners=False)
    if kind == "blur":
        raise KernelError(f"baseline 'blur' needs inputs with spatial axes (channels, ...); these are {tuple(x.shape[1:])}")
    return torch.zeros_like(x)


def auto_batch(forward: Forward, x: torch.Tensor, extra: tuple, budget: int | None = None) -> int:
    """Evaluations per pass that fit ``budget`` bytes (default :data:`MEMORY`, read at the call):
    one sample's activations, measured."""
    budget = MEMORY if budget is None else budget
    sizes = []

    def count(_module, _inputs, output):
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                sizes.append(t.numel() * t.element_size())

    leaves = [m for m in forward.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            forward(x[:1], *(e[:1] if isinstance(e, torch.Tensor) and e.ndim else e for e in extra))
    finally:
        for h in hooks:
            h.remove()
    per_sample = max(1, sum(sizes) + x[:1].numel() * x.element_size()) * BACKWARD_FACTOR
    return max(1, int(budget // per_sample))


def attribute_batch(model, inputs, method, target="predicted", labels=None, layer: str | None = None,
                    facts: dict | None = None, classes=None, name: str = "the method",
                    internal_batch_size: int | None = None) -> Attributions:
    """Attribute one batch (``inputs`` as the model takes it) with a built method object."""
    facts = facts or {}
    forward = Forward(model, inputs)
    x, extra = forward.split(inputs)
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise KernelError("cannot explain this model: its main input is not a batched tensor")
    if getattr(method, "gradient", False) and not x.dtype.is_floating_point:
        raise KernelError(f"{name} differentiates the model with respect to its input, and this model's input is "
                          f"integer ({str(x.dtype).replace('torch.', '')}, token ids?), which has no gradient; use "
                          f"a method that works at the embedding (interpret.layer_integrated_gradients) or that "
                          f"perturbs the input (interpret.occlusion, interpret.feature_ablation)")
    model.eval()
    with torch.no_grad():  # the scores (for the predicted classes), and how coarse each convolution's map is
        sizes, outputs = output_sizes(model, lambda: forward(x, *extra))
    targets = resolve_targets(target, outputs, labels, classes)
    layer_name, layer_module = (None, None)
    if getattr(method, "layer", None) or layer:
        layer_name, layer_module = find_layer(model, getattr(method, "layer", None), layer, name, sizes)
    batch = internal_batch_size or auto_batch(forward, x, extra)
    with warnings.catch_warnings(), per_token(layer_module) as hooked, torch.enable_grad():
        # Captum warns that the input does not require gradients: it sets that itself
        warnings.filterwarnings("ignore", message=".*require.*grad.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="captum")
        context = Context(baseline_for(x, facts, getattr(method, "baseline", "zero")), tuple(extra), hooked, batch, facts)
        try:
            raw = method.attribute(forward, x, targets, context)
        except KernelError:
            raise
        except Exception as exc:  # Captum refuses some models (DeepLift and a ReLU used twice): say which, and why
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise KernelError(f"{name} cannot explain {type(model).__name__}: {reason} (try another method; "
                              f"`kernel list attributions` shows them)") from exc
    if isinstance(raw, tuple):
        raw = raw[0]
    if not isinstance(raw, torch.Tensor):
        raise KernelError(f"{name} returned a {type(raw).__name__}, not a tensor of attributions")
    shaped = to_input_form(raw, x) if layer_module is not None else raw.detach()
    return Attributions(shaped.float().cpu(), x.detach().cpu(), targets.cpu(), outputs.detach().cpu(),
                        lengths_of(x, facts.get("padding_idx")), layer_name, batch)
