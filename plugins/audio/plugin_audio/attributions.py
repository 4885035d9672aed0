"""A picture of an audio attribution: where in time and frequency the evidence lies.

The interpretability plugin asks the kernel's renderer choice to draw each sample's attribution
(meta role ``"attribution"``); ``audio.attribution`` draws those of waveform inputs (channels,
frames). Top panel: the input's spectrogram in grey (dB, the STFT of ``audio.spectrogram``), with
the attribution in colour over it; bottom panel: the attribution over time, one signed value per
STFT frame (the sum of the attribution within the frame), red for the class, blue against.

What the colour over the spectrogram is depends on the attribution:

* shaped like the waveform and signed (integrated gradients, DeepLift, ...): the magnitude of the
  attribution signal's own STFT on the same grid: which time-frequency components carry it;
* shaped like the waveform and never negative (Grad-CAM of a 1-D convolution, absolute saliency):
  a relevance per sample, not a signal, so its per-frame mean, the same at every frequency;
* a layer's own map (1, F', T') (Grad-CAM on a spectrogram computed inside the model): that map
  stretched over the spectrogram's grid (its bands need not be linear in Hz: mel bands are drawn
  evenly from 0 to half the sample rate).
"""
from __future__ import annotations

from kernel import figure_to_image, pyplot

from .renderers import _decibels, _floatlike, _rate, _stft

POSITIVE = (214 / 255, 39 / 255, 40 / 255)  # red: evidence for the explained class
NEGATIVE = (31 / 255, 119 / 255, 180 / 255)  # blue: evidence against it
MAX_ALPHA = 0.9


def _is_waveform_shape(shape) -> bool:
    return len(shape) == 2 and shape[0] <= 8 and shape[1] >= 64


class AttributionSpectrogram:
    """An attribution of a waveform input over its spectrogram, and over time below it."""

    def score(self, meta) -> float:
        if meta.get("role") != "attribution" or "audio" not in tuple(meta.get("tags") or ()):
            return 0.0
        waveform = _is_waveform_shape(tuple(meta.get("input_shape") or ())) and \
            _floatlike({"dtype": meta.get("input_dtype", "")})
        return 0.95 if waveform and len(tuple(meta.get("shape") or ())) in (1, 2, 3) else 0.0

    def render(self, tensor, context):
        return figure_to_image(self.figure(tensor, context), dpi=100)

    def figure(self, tensor, context):
        """The matplotlib figure behind :meth:`render`: axes[0] the spectrogram with the attribution
        (images[0] the spectrogram, images[1] the attribution), axes[1] the attribution per frame."""
        import numpy as np
        import torch

        context = context or {}
        attribution = torch.nan_to_num(torch.as_tensor(tensor).detach().cpu().float())
        waveform = _input_waveform(context, attribution)
        spectrum, spec = _stft(waveform.mean(0, keepdim=True))
        db = _decibels(spectrum, spec, already=False)[0]
        bins, frames = db.shape
        hop = spec["hop_length"]
        strength, signed, kind = over_spectrogram(attribution, waveform.shape[-1], (bins, frames), hop)
        per_frame = over_time(attribution, waveform.shape[-1], hop, frames)

        rate = _rate(context)
        seconds = waveform.shape[-1] / rate if rate else waveform.shape[-1]
        top = rate / 2 if rate else bins
        plt = pyplot()
        fig, (ax, below) = plt.subplots(2, 1, figsize=(6, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        extent = (0, seconds, 0, top)
        ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="gray", extent=extent)
        ax.imshow(_rgba(strength.numpy(), signed.numpy()), origin="lower", aspect="auto", extent=extent)
        ax.set_ylabel("frequency (Hz)" if rate else "bin")
        ax.set_title(_title(context, kind), fontsize=9)

        centres = (np.arange(frames) * hop) / rate if rate else np.arange(frames) * hop
        values = per_frame.numpy()
        below.fill_between(centres, values, 0, where=values >= 0, color=POSITIVE, step="mid", linewidth=0)
        below.fill_between(centres, values, 0, where=values < 0, color=NEGATIVE, step="mid", linewidth=0)
        below.axhline(0, color="#666666", linewidth=0.5)
        below.set_xlim(0, seconds)
        below.set_ylabel("per frame", fontsize=8)
        below.set_xlabel("time (s)" if rate else "sample")
        fig.tight_layout()
        return fig


def _input_waveform(context, attribution):
    """The input (channels, frames) as floats; without one, silence as long as the attribution."""
    import torch

    x = context.get("input")
    if x is not None:
        x = torch.as_tensor(x).detach().cpu().float()
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.ndim == 2:
            return x
    frames = attribution.shape[-1] if attribution.ndim <= 2 else 4096
    return torch.zeros(1, max(frames, 64))


def over_spectrogram(attribution, frames_in: int, grid, hop: int):
    """``(strength in 0..1, sign, kind)`` on the spectrogram's (bins, frames) grid (see the module)."""
    import torch

    bins, frames = grid
    if attribution.ndim == 3 or (attribution.ndim == 2 and attribution.shape[-1] != frames_in):
        layer_map = attribution.reshape(-1, *attribution.shape[-2:]).mean(0) if attribution.ndim == 3 else attribution
        stretched = torch.nn.functional.interpolate(layer_map[None, None], size=(bins, frames), mode="bilinear",
                                                    align_corners=False)[0, 0]
        return _unit(stretched.abs()), torch.sign(stretched), "the layer's map, stretched"
    signal = attribution.reshape(-1, attribution.shape[-1]).sum(0)  # channels summed: one signal
    if float(signal.min()) >= 0:  # a relevance per sample: spread over every frequency of its frame
        per_frame = over_time(attribution, frames_in, hop, frames) / hop  # a mean, not a sum
        return _unit(per_frame.expand(bins, frames)), torch.ones(bins, frames), "relevance per frame"
    spectrum, _ = _stft(signal.unsqueeze(0))
    return _unit(spectrum[0].abs()), torch.ones(bins, frames), "|STFT| of the attribution"


def over_time(attribution, frames_in: int, hop: int, frames: int):
    """One signed value per STFT frame: the attribution summed over the samples nearest each frame's
    centre (a layer's own map: summed over its bands, stretched to the frames)."""
    import torch

    if attribution.ndim == 3 or (attribution.ndim == 2 and attribution.shape[-1] != frames_in):
        series = attribution.reshape(-1, attribution.shape[-1]).sum(0)
        return torch.nn.functional.interpolate(series[None, None], size=frames, mode="linear",
                                               align_corners=False)[0, 0]
    signal = attribution.reshape(-1, attribution.shape[-1]).sum(0)
    frame_of_sample = ((torch.arange(signal.numel()) + hop // 2) // hop).clamp(max=frames - 1)
    return torch.zeros(frames).index_add_(0, frame_of_sample, signal)


def _unit(values):
    """Values scaled to 0..1 by their 99th percentile (one loud spike would hide the rest)."""
    import torch

    flat = values.flatten()
    scale = float(torch.quantile(flat, 0.99)) if 1 < flat.numel() <= 16_000_000 else float(flat.max())
    scale = scale if scale > 0 else float(flat.max())
    return (values / scale).clamp(0, 1) if scale > 0 else torch.zeros_like(values)


def _rgba(strength, sign):
    """The attribution as an RGBA layer: red or blue by sign, opaque by strength, clear at zero."""
    import numpy as np

    rgba = np.zeros((*strength.shape, 4))
    rgba[..., :3] = np.where((sign >= 0)[..., None], POSITIVE, NEGATIVE)
    rgba[..., 3] = strength * MAX_ALPHA
    return rgba


def _title(context, kind: str) -> str:
    classes, explained = context.get("classes"), context.get("explained")
    name = "?" if explained is None else (str(classes[int(explained)]) if classes and 0 <= int(explained) < len(classes)
                                          else str(int(explained)))
    method = str(context.get("method") or "attribution")
    if context.get("layer"):
        method += f" at {context['layer']}"
    return f"{method} - explains: {name}\ncolour: {kind}"
