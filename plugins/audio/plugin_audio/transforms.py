"""``audio.<Name>``: torchaudio's transforms, built by name (the names are data, in ``names.py``).

A transform is the torchaudio module itself; the few that return ``(waveform, lengths)`` (Speed,
SpeedPerturbation) are wrapped to return the waveform, since a sample's input is one tensor.
Parameters are torchaudio's own (``kernel show audio.MelSpectrogram`` lists them): the kernel does
not fill transform parameters from data facts, so give ``sample_rate`` to the ones that take it.
"""
from __future__ import annotations

import inspect

from .names import TRANSFORMS


class FirstOutput:
    """Calls a torchaudio module and keeps the first of the outputs it returns."""

    def __init__(self, module):
        self.module = module

    def __call__(self, x):
        out = self.module(x)
        return out[0] if isinstance(out, tuple) else out

    def __repr__(self):
        return f"FirstOutput({self.module!r})"


def _factory(name: str):
    import torchaudio.transforms as T

    cls = getattr(T, name)

    def build(*args, **params):
        module = cls(*args, **params)
        return FirstOutput(module) if name in ("Speed", "SpeedPerturbation") else module

    build.__name__ = build.__qualname__ = name
    build.__doc__ = cls.__doc__
    build.__signature__ = inspect.signature(cls)
    return build


def __getattr__(name: str):
    if name not in TRANSFORMS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    fn = globals()[name] = _factory(name)
    return fn
