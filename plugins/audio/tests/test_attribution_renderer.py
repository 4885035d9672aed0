"""audio.attribution: the kernel's renderer choice gives it attributions of waveform inputs; its picture is
the input's spectrogram with the attribution over it (time and frequency) and the attribution per frame
below, and where the attribution lies in time shows in that half of the picture."""
import math

import numpy as np
import pytest
import torch

import kernel
from kernel import choose_renderer
from plugin_audio.attributions import AttributionSpectrogram
from plugin_audio.renderers import SoundRenderer, SpectrogramRenderer, WaveformRenderer

RATE = 8000


def tone(seconds=1.0, hz=440.0):
    t = torch.arange(int(seconds * RATE)) / RATE
    return (0.5 * torch.sin(2 * math.pi * hz * t)).unsqueeze(0)  # (1, frames)


def attribution_meta(attribution, x, tags=("audio", "classification")):
    """The meta the interpretability plugin gives the renderer choice (the contract's section 2)."""
    return {"role": "attribution", "shape": tuple(attribution.shape), "dtype": "float32", "tags": tags,
            "classes": ["low", "high"], "input_shape": tuple(x.shape), "input_dtype": str(x.dtype).replace("torch.", "")}


def context(x, attribution, **more):
    return {"input": x, "attribution": attribution, "facts": {"sample_rate": RATE}, "classes": ["low", "high"],
            "explained": 1, "method": "interpret.integrated_gradients", "layer": None, **more}


def halves(x, first: bool):
    """The input's attribution (input x gradient-like: signed, shaped like the input) in one half of time only."""
    a = x * 0.3
    n = x.shape[-1] // 2
    if first:
        a[:, n:] = 0
    else:
        a[:, :n] = 0
    return a


def overlay_mass(fig) -> tuple[float, float]:
    """How much attribution colour the spectrogram panel shows in the first and second half of time."""
    alpha = fig.axes[0].images[1].get_array()[..., 3]
    n = alpha.shape[1] // 2
    return float(alpha[:, :n].sum()), float(alpha[:, n:].sum())


def test_the_kernel_chooses_it_for_waveform_attributions():
    x = tone()
    for attribution in (torch.randn(1, RATE), torch.rand(1, RATE), torch.rand(1, 16, 20)):  # IG, 1-D Grad-CAM, 2-D layer
        meta = attribution_meta(attribution, x)
        name, renderer = choose_renderer(kernel.get_catalog(), meta)
        assert name == "audio.attribution" and isinstance(renderer, AttributionSpectrogram)
        for other in (SoundRenderer(), WaveformRenderer(), SpectrogramRenderer()):
            assert other.score(meta) == 0  # the sound and its plots are for inputs only
    renderer = AttributionSpectrogram()
    meta = attribution_meta(torch.randn(1, RATE), x)
    assert renderer.score({**meta, "tags": ("vision",)}) == 0 and renderer.score({**meta, "role": "input"}) == 0
    assert renderer.score({**meta, "input_shape": (1, 64, 20)}) == 0  # a spectrogram input: not a waveform


def test_the_picture_has_the_spectrogram_and_the_time_panel():
    x = tone()
    a = halves(x, first=True)
    renderer = AttributionSpectrogram()
    picture = renderer.render(a, context(x, a))
    assert picture.width >= 500 and picture.height >= 400
    fig = renderer.figure(a, context(x, a))
    spectrogram, over_time = fig.axes[:2]
    assert len(spectrogram.images) == 2  # the input's spectrogram, the attribution over it
    assert spectrogram.get_ylabel() == "frequency (Hz)" and spectrogram.images[0].get_extent()[3] == RATE / 2
    assert over_time.get_xlabel() == "time (s)" and over_time.get_xlim()[1] == pytest.approx(1.0)
    # the panels: the spectrogram above and taller, time below
    top, bottom = spectrogram.get_position(), over_time.get_position()
    assert top.y0 > bottom.y1 and top.height > 2 * bottom.height
    title = spectrogram.get_title()
    assert "interpret.integrated_gradients" in title and "explains: high" in title


def test_early_and_late_attributions_show_in_their_own_half():
    x = tone() + 0.05 * torch.randn(1, RATE, generator=torch.Generator().manual_seed(0))
    early, late = halves(x, first=True), halves(x, first=False)
    renderer = AttributionSpectrogram()
    first, second = overlay_mass(renderer.figure(early, context(x, early)))
    assert first > 10 * second
    first, second = overlay_mass(renderer.figure(late, context(x, late)))
    assert second > 10 * first
    # the 440 Hz component carries the attribution: brightest row near 440 Hz
    alpha = renderer.figure(early, context(x, early)).axes[0].images[1].get_array()[..., 3]
    bins = alpha.shape[0]
    assert abs(alpha.sum(1).argmax() * (RATE / 2) / (bins - 1) - 440) < 2 * (RATE / 2) / (bins - 1)
    # the pictures: they differ, more in the half where the attribution moved
    a = np.asarray(renderer.render(early, context(x, early)), dtype=float)
    b = np.asarray(renderer.render(late, context(x, late)), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() > 1


def test_per_frame_values_are_signed_and_where_the_attribution_is():
    x = tone()
    a = torch.zeros_like(x)
    a[:, :2000] = 1.0  # for the class, first quarter
    a[:, -2000:] = -1.0  # against it, last quarter
    from plugin_audio.attributions import over_time

    per_frame = over_time(a, x.shape[-1], 128, x.shape[-1] // 128 + 1)
    frames = per_frame.numel()
    assert per_frame[: frames // 5].min() > 0 and per_frame[-frames // 5:].max() < 0
    assert per_frame[frames // 3: 2 * frames // 3].abs().max() == 0
    assert float(per_frame.sum()) == pytest.approx(0.0, abs=1e-3)


def test_a_layer_map_is_stretched_over_the_spectrogram():
    x = tone()
    cam = torch.zeros(1, 16, 20)
    cam[:, :, 15:] = 1.0  # Grad-CAM on an inner spectrogram: the last quarter of time
    renderer = AttributionSpectrogram()
    fig = renderer.figure(cam, context(x, cam, method="interpret.grad_cam", layer="features.2"))
    first, second = overlay_mass(fig)
    assert second > 10 * first
    assert "stretched" in fig.axes[0].get_title() and "features.2" in fig.axes[0].get_title()
    picture = renderer.render(cam, context(x, cam, method="interpret.grad_cam", layer="features.2"))
    assert picture.width >= 500


def test_a_non_negative_waveform_map_is_drawn_per_frame_over_all_frequencies():
    x = tone()
    cam = torch.zeros(1, RATE)
    cam[:, RATE // 2:] = 1.0  # Grad-CAM of a 1-D convolution, upsampled to the input: late half
    fig = AttributionSpectrogram().figure(cam, context(x, cam, method="interpret.grad_cam"))
    alpha = fig.axes[0].images[1].get_array()[..., 3]
    first, second = overlay_mass(fig)
    assert second > 10 * first
    late = alpha[:, -5]
    assert late.min() == pytest.approx(late.max())  # the same at every frequency
