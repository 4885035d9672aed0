"""``audio.<Name>``: torchaudio's transforms, built by name (the names are data, in ``names.py``).

A transform is the torchaudio module itself; the few that return ``(waveform, lengths)`` (Speed,
SpeedPerturbation) are wrapped to return the waveform, since a sample's input is one tensor.
Parameters are torchaudio's own (``kernel show audio.MelSpectrogram`` lists them): the kernel does
not fill transform parameters from data facts, so give ``sample_rate`` to the ones that take it.

The transforms that change what a tensor means offer ``facts()``, which the kernel merges into the
data facts: a spectrogram says its FFT size, hop and mel bands (so the spectrogram renderer labels
its axes in seconds and Hz), ``AmplitudeToDB`` says the values are already in dB, and ``Resample``
gives the new ``sample_rate`` (the rate models are built for).
"""
from __future__ import annotations

import inspect
import math

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


class Facts:
    """A transform's ``facts()``: plain data, picklable (runs in worker processes carry it)."""

    def __init__(self, facts: dict):
        self.value = facts

    def __call__(self) -> dict:
        return dict(self.value)


def _spectrogram(module, **extra) -> dict:
    return {"n_fft": int(module.n_fft), "hop_length": int(module.hop_length),
            "power": None if module.power is None else float(module.power), **extra}


def facts_of(name: str, module) -> dict | None:
    """What the output of a torchaudio transform is, for renderers and models (None: nothing new)."""
    if name == "Spectrogram":
        return {"spectrogram": _spectrogram(module)}
    if name == "MelSpectrogram":
        return {"spectrogram": _spectrogram(module, n_mels=int(module.n_mels), f_min=float(module.f_min),
                                            f_max=float(module.f_max or module.sample_rate / 2),
                                            mel_scale=str(module.mel_scale.mel_scale))}
    if name == "MFCC":
        return {"spectrogram": _spectrogram(module.MelSpectrogram, coefficients=int(module.n_mfcc))}
    if name == "LFCC":
        return {"spectrogram": _spectrogram(module.Spectrogram, coefficients=int(module.n_lfcc))}
    if name == "AmplitudeToDB":
        return {"spectrogram_db": True}
    if name == "Resample":
        return {"sample_rate": int(module.new_freq)}
    return None


def portable_of(name: str, module) -> dict | None:
    """A transform as data for a torch-free runtime (plugin-onnx), where one is simple and exact;
    spectrograms and random augmentations are not described (None)."""
    if name == "Resample" and module.resampling_method == "sinc_interp_hann":
        return {"step": "resample", "orig_freq": int(module.orig_freq), "new_freq": int(module.new_freq),
                "lowpass_filter_width": int(module.lowpass_filter_width), "rolloff": float(module.rolloff)}
    if name == "Vol":  # a factor, then a clamp to [-1, 1]
        gain, kind = float(module.gain), module.gain_type
        if kind == "amplitude":
            return {"step": "gain", "factor": gain}
        if kind == "db" or (kind == "power" and gain > 0):
            db = gain if kind == "db" else 10 * math.log10(gain)
            return {"step": "gain", "factor": 10 ** (db / 20)}
    return None


def _factory(name: str):
    import torchaudio.transforms as T

    cls = getattr(T, name)

    def build(*args, **params):
        module = cls(*args, **params)
        if name in ("Speed", "SpeedPerturbation"):
            return FirstOutput(module)
        facts = facts_of(name, module)
        if facts is not None:
            module.facts = Facts(facts)  # a plain attribute on the module: torchaudio's forward is untouched
        portable = portable_of(name, module)
        if portable is not None:
            module.portable = Facts(portable)  # plain data too, returned by a call
        return module

    build.__name__ = build.__qualname__ = name
    build.__doc__ = cls.__doc__
    build.__signature__ = inspect.signature(cls)
    return build


def __getattr__(name: str):
    if name not in TRANSFORMS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    fn = globals()[name] = _factory(name)
    return fn
