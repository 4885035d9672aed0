"""A model as exporters want it: positional tensors in, one tensor out.

A batch reaches a kernel model as the collate function made it: one tensor, a tuple of tensors or a
dict of named tensors (``kernel.forward``). Exported graphs have flat, named inputs, so
:class:`Flat` takes the batch's tensors in order and rebuilds the structure before calling the
model; :func:`flatten` gives the names and tensors of a batch in that order.
"""
from __future__ import annotations

import torch
from torch import nn

from kernel import KernelError


def flatten(batch) -> tuple[list[str], list[torch.Tensor], str]:
    """``(names, tensors, structure)`` of a batch; structure is "tensor", "tuple" or "dict"."""
    if isinstance(batch, torch.Tensor):
        return ["input"], [batch], "tensor"
    if isinstance(batch, dict):
        names, values = list(batch), list(batch.values())
        structure = "dict"
    elif isinstance(batch, (tuple, list)):
        names, values = [f"input_{i}" for i in range(len(batch))], list(batch)
        structure = "tuple"
    else:
        raise KernelError(f"a batch of {type(batch).__name__} cannot be exported: exporters take a tensor, a tuple "
                          f"or a dict of tensors")
    for name, value in zip(names, values):
        if not isinstance(value, torch.Tensor):
            raise KernelError(f"the batch's {name!r} is a {type(value).__name__}, not a tensor: exported graphs take "
                              f"tensors only")
    return names, values, structure


class Flat(nn.Module):
    """``Flat(model, names, structure, prelude)(*tensors)``: the model called as ``kernel.forward`` would
    call it. ``prelude`` (a module or None) runs on the first input first: preprocessing put in the graph."""

    def __init__(self, model: nn.Module, names: list[str], structure: str, prelude: nn.Module | None = None):
        super().__init__()
        self.model, self.names, self.structure, self.prelude = model, list(names), structure, prelude

    def forward(self, *tensors):
        if self.prelude is not None:
            tensors = (self.prelude(tensors[0]), *tensors[1:])
        if self.structure == "dict":
            out = self.model(**dict(zip(self.names, tensors)))
        elif self.structure == "tuple":
            out = self.model(*tensors)
        else:
            out = self.model(tensors[0])
        return first_tensor(out)


def first_tensor(out):
    """A model may return a tuple or a dict (logits first): the exported graph returns the logits."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and out:
        return first_tensor(next(iter(out.values())))
    if isinstance(out, (tuple, list)) and out:
        return first_tensor(out[0])
    raise KernelError(f"the model returned {type(out).__name__}, not a tensor of class scores")


class Normalize(nn.Module):
    """The ``normalize`` step inside the graph: ``(x - mean) / std`` per channel of an N, C, ... batch."""

    def __init__(self, mean, std, channels_dim: int = 1, ndim: int = 4):
        super().__init__()
        shape = [1] * ndim
        shape[channels_dim] = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x):
        return (x - self.mean) / self.std


#: the portable steps that can run inside the graph instead of in the caller's code
IN_GRAPH = {"normalize"}


def prelude_for(steps: list[dict], ndim: int) -> tuple[nn.Module | None, list[dict], list[str]]:
    """Split the preprocessing: the trailing steps that can become part of the graph as one module,
    the steps left for the caller, and the names of those moved."""
    if not steps or steps[-1].get("step") not in IN_GRAPH:  # one normalisation, the last step
        return None, steps, []
    step = steps[-1]
    return Normalize(step["mean"], step["std"], 1, ndim), steps[:-1], [step["step"]]
