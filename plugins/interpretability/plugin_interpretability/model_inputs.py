"""A model's batch as Captum sees it: one tensor to attribute, the rest passed along unchanged.

Kernel models take a tensor, a tuple or a dict (text: ``{"input_ids", "padding_mask", "lengths"}``).
Captum attributes one input tensor and hands the others to the model as *additional forward
arguments*, which it expands along the batch itself (integrated gradients repeats each sample once
per step). :class:`Forward` is that model call as an ``nn.Module``, so DeepLift (which hooks
modules) works on it too.
"""
from __future__ import annotations

import torch

from kernel import KernelError, forward

#: the key of a dict batch that is attributed, when it has one (the text plugin's token ids)
MAIN_KEYS = ("input_ids", "input", "inputs", "x")


class Forward(torch.nn.Module):
    """``Forward(model, batch)(x, *rest)``: the model's output (logits) for ``batch`` with its main
    tensor replaced by ``x`` and the other parts by ``rest`` (as :meth:`split` gave them)."""

    def __init__(self, model, batch):
        super().__init__()
        self.model = model
        if isinstance(batch, dict):
            self.key = next((k for k in MAIN_KEYS if k in batch), next(iter(batch)))
            self.others = [k for k in batch if k != self.key]
            self.kind = "dict"
        elif isinstance(batch, (tuple, list)):
            self.key, self.others, self.kind = 0, list(range(1, len(batch))), "tuple"
        elif isinstance(batch, torch.Tensor):
            self.key, self.others, self.kind = None, [], "tensor"
        else:
            raise KernelError(f"cannot explain a model whose batch is a {type(batch).__name__}; "
                              "a tensor, a tuple or a dict of tensors is needed")

    def split(self, batch) -> tuple:
        """``(main tensor, other parts)`` of a batch."""
        if self.kind == "tensor":
            return batch, ()
        return batch[self.key], tuple(batch[k] for k in self.others)

    def join(self, x, rest):
        if self.kind == "tensor":
            return x
        if self.kind == "dict":
            return {self.key: x, **dict(zip(self.others, rest))}
        return (x, *rest)

    def forward(self, x, *rest):
        out = forward(self.model, self.join(x, rest))
        if isinstance(out, (tuple, list)):  # (logits, extras): the first output is the prediction
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise KernelError(f"the model returns {_describe(out)}; attributions need class scores "
                              "of shape (batch, classes)")
        return out


def _describe(out) -> str:
    return f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"


def lengths_of(x, padding_idx) -> list[int]:
    """Each sample's length without its trailing padding (token ids), else its full length."""
    if x.dtype.is_floating_point or padding_idx is None or x.ndim != 2:
        return [int(x.shape[1]) if x.ndim > 1 else 1] * int(x.shape[0])
    out = []
    for row in x:
        n = int(row.shape[0])
        while n > 0 and int(row[n - 1]) == padding_idx:
            n -= 1
        out.append(n)
    return out
