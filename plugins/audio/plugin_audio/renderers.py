"""Audio samples heard and seen: the sound itself (a WAV, a player in the report), a waveform plot,
a spectrogram image in dB.

Axes are in seconds and Hz when the sample rate is known (``context["facts"]["sample_rate"]``),
else in samples, frames and bins. ``figure(tensor, context)`` gives the matplotlib figure that
``render`` turns into an image (tests read its axes).
"""
from __future__ import annotations

from kernel import Media, figure_to_image, pyplot

from .io import wav_bytes


def _floatlike(meta) -> bool:
    return str(meta.get("dtype", "")).startswith(("float", "bfloat"))


def _rate(context):
    facts = (context or {}).get("facts") or {}
    rate = facts.get("sample_rate")
    return int(rate) if rate else None


def _to_image(fig):
    return figure_to_image(fig, dpi=100)


def _figure(rows: int = 1):
    return pyplot().subplots(rows, 1, figsize=(6, 1.6 + 1.4 * rows), squeeze=False)


def _is_waveform(meta) -> bool:
    """An input of (channels, frames): a few channels, enough frames to be a sound."""
    shape = tuple(meta.get("shape") or ())
    return meta.get("role") == "input" and _floatlike(meta) and len(shape) == 2 and shape[0] <= 8 \
        and shape[1] >= 64


class WaveformRenderer:
    """A waveform: one line per channel, time in seconds."""

    def score(self, meta) -> float:
        if not _is_waveform(meta):
            return 0.0
        return 0.9 if "audio" in (meta.get("tags") or ()) else 0.3

    def render(self, tensor, context):
        return _to_image(self.figure(tensor, context))

    def figure(self, tensor, context):
        """The matplotlib figure behind :meth:`render` (closed by ``render``)."""
        import numpy as np

        x = tensor.detach().float().cpu()
        rate = _rate(context)
        fig, axes = _figure(x.shape[0])
        t = np.arange(x.shape[-1]) / rate if rate else np.arange(x.shape[-1])
        for c, ax in enumerate(axes[:, 0]):
            ax.plot(t, x[c].numpy(), linewidth=0.6)
            ax.set_ylabel(f"ch {c}" if x.shape[0] > 1 else "amplitude")
            ax.set_xlim(t[0], t[-1])
        axes[-1, 0].set_xlabel("time (s)" if rate else "sample")
        axes[0, 0].set_title(_title(context, rate))
        fig.tight_layout()
        return fig


class SoundRenderer:
    """The waveform itself as a 16-bit WAV file, so the report plays it; without a known sample
    rate (nothing to play it at) the waveform plot instead."""

    def score(self, meta) -> float:
        # above the waveform plot: an audio sample is first of all something to listen to
        return 0.95 if _is_waveform(meta) and "audio" in (meta.get("tags") or ()) else 0.0

    def render(self, tensor, context):
        rate = _rate(context)
        if not rate:
            return WaveformRenderer().render(tensor, context)
        return Media("audio", wav_bytes(tensor, rate), ".wav")


class SpectrogramRenderer:
    """A spectrogram in dB, time in seconds and frequency in Hz: (channels, bins, frames) power or
    complex STFT, or a waveform (the STFT is computed).

    The FFT size, hop and mel bands come from ``context["facts"]["spectrogram"]`` (what
    ``audio.Spectrogram`` and ``audio.MelSpectrogram`` offer as facts); without them a linear
    spectrogram is assumed, with torchaudio's default hop (half the window).
    """

    def score(self, meta) -> float:
        shape = tuple(meta.get("shape") or ())
        audio = "audio" in (meta.get("tags") or ())
        if meta.get("role") != "input":
            return 0.0
        if str(meta.get("dtype", "")).startswith("complex") and len(shape) in (2, 3):
            return 0.95  # a complex STFT: nothing else draws it
        if not _floatlike(meta):
            return 0.0
        if len(shape) == 3 and shape[0] <= 8 and shape[1] >= 8 and shape[2] >= 2:
            return 0.9 if audio else 0.0  # (C, H, W) without the audio tag is an image
        if len(shape) == 2 and shape[1] >= 64 and shape[0] <= 8:
            return 0.2 if audio else 0.0  # a waveform: the waveform plot comes first
        return 0.0

    def render(self, tensor, context):
        return _to_image(self.figure(tensor, context))

    def figure(self, tensor, context):
        """The matplotlib figure behind :meth:`render` (closed by ``render``)."""
        x = tensor.detach().cpu()
        rate = _rate(context)
        facts = (context or {}).get("facts") or {}
        spec = dict(facts.get("spectrogram") or {})
        if x.ndim == 2 and not x.is_complex():  # a waveform: its STFT
            x, spec = _stft(x)
        if x.ndim == 2:
            x = x.unsqueeze(0)
        db = _decibels(x, spec, already=bool(facts.get("spectrogram_db")))
        bins, frames = db.shape[-2], db.shape[-1]
        n_fft = int(spec.get("n_fft") or 2 * (bins - 1))
        hop = int(spec.get("hop_length") or max(1, n_fft // 2))
        seconds = frames * hop / rate if rate else frames
        fig, axes = _figure(db.shape[0])
        for c, ax in enumerate(axes[:, 0]):
            if spec.get("coefficients"):  # MFCC, LFCC: cepstral coefficients, not frequencies
                top, label = bins, "coefficient"
            elif spec.get("n_mels"):
                top, label = bins, "frequency (Hz, mel scale)" if rate else "mel band"
            else:
                top, label = (rate / 2, "frequency (Hz)") if rate else (bins, "bin")
            image = ax.imshow(db[c].numpy(), origin="lower", aspect="auto", cmap="magma",
                              extent=(0, seconds, 0, top))
            if spec.get("n_mels") and rate and not spec.get("coefficients"):
                _mel_ticks(ax, spec, bins, rate)
            ax.set_ylabel(label)
            fig.colorbar(image, ax=ax, label="dB")
        axes[-1, 0].set_xlabel("time (s)" if rate else "frame")
        axes[0, 0].set_title(_title(context, rate))
        fig.tight_layout()
        return fig


def _stft(waveform):
    """The complex STFT of a (channels, frames) waveform, and its facts."""
    import torch

    n_fft = 512 if waveform.shape[-1] >= 2048 else 64
    x = torch.stft(waveform.float(), n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True)
    return x, {"n_fft": n_fft, "hop_length": n_fft // 4}


def _decibels(x, spec: dict, already: bool):
    """A spectrogram in dB: |X|^2 of a complex STFT, 10 log10 of power, 20 log10 of magnitude."""
    import torch

    if x.is_complex():
        return 10 * torch.log10(x.abs().pow(2).clamp_min(1e-10))
    x = x.float()
    if already or spec.get("coefficients") or float(x.min()) < 0:
        return x  # AmplitudeToDB, a log-mel or cepstra: already logarithmic (power is never negative)
    scale = 20 if spec.get("power") == 1.0 else 10
    return scale * torch.log10(x.clamp_min(1e-10))


def _mel_ticks(ax, spec: dict, bins: int, rate: int):
    """Label mel bands with their centre frequency in Hz (the peak of each band's triangle)."""
    import torchaudio.functional as F

    n_freqs = int(spec.get("n_fft") or 2 * (bins - 1)) // 2 + 1
    f_max = float(spec.get("f_max") or rate / 2)
    banks = F.melscale_fbanks(n_freqs, float(spec.get("f_min") or 0.0), f_max, bins, rate,
                              mel_scale=spec.get("mel_scale") or "htk")
    centres = banks.argmax(0).float() * (rate / 2) / (n_freqs - 1)
    ticks = list(range(0, bins, max(1, bins // 5)))
    ax.set_yticks([b + 0.5 for b in ticks])
    ax.set_yticklabels([f"{float(centres[b]):.0f}" for b in ticks])


def _label(value, classes) -> str:
    import torch

    t = torch.as_tensor(value)
    if t.ndim == 0 and not t.is_floating_point():
        i = int(t)
        return str(classes[i]) if classes and 0 <= i < len(classes) else str(i)
    if t.ndim == 1 and t.is_floating_point() and classes and t.numel() == len(classes):
        return str(classes[int(t.argmax())])
    return f"tensor{tuple(t.shape)}"


def _title(context, rate) -> str:
    context = context or {}
    parts = []
    target = context.get("target")
    if target is not None:
        parts.append(f"label: {_label(target, context.get('classes'))}")
    if context.get("prediction") is not None:
        parts.append(f"predicted: {_label(context['prediction'], context.get('classes'))}")
    if rate:
        parts.append(f"{rate} Hz")
    return "   ".join(parts)
