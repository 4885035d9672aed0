"""vision.attribution: the kernel's renderer choice gives it image attributions, and its picture is the
image (grey) tinted where the attribution is large: red for the class, blue against."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import kernel
from kernel import choose_renderer
from plugin_vision.attributions import NEGATIVE, AttributionOverlay
from plugin_vision.renderers import Bitmap, Boxes, Masks, Volume

CLASSES = ["zero", "one", "two", "three"]


def attribution_meta(attribution, x, tags=("vision", "classification")):
    """The meta the interpretability plugin gives the renderer choice (the contract's section 2)."""
    return {"role": "attribution", "shape": tuple(attribution.shape), "dtype": "float32", "tags": tags,
            "classes": CLASSES, "input_shape": tuple(x.shape), "input_dtype": str(x.dtype).replace("torch.", "")}


def context(x, attribution, **more):
    return {"input": x, "attribution": attribution, "facts": {}, "normalize": None, "classes": CLASSES,
            "explained": 2, "method": "interpret.integrated_gradients", "layer": None, **more}


def image_part(picture) -> np.ndarray:
    """The image inside the picture (above the legend), as RGB floats."""
    left, top, right, bottom = map(int, picture.info["image_box"].split(","))
    return np.asarray(picture.convert("RGB"), dtype=float)[top:bottom, left:right]


def colourfulness(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, how far from grey: 0 for any grey."""
    return rgb.max(-1) - rgb.min(-1)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_kernel_chooses_it_for_image_attributions(channels):
    x = torch.rand(channels, 32, 32)
    for attribution in (torch.randn(channels, 32, 32), torch.rand(1, 32, 32)):  # input methods, Grad-CAM
        name, renderer = choose_renderer(kernel.get_catalog(), attribution_meta(attribution, x))
        assert name == "vision.attribution" and isinstance(renderer, AttributionOverlay)


def test_no_other_vision_renderer_draws_attributions():
    x = torch.rand(3, 32, 32)
    meta = attribution_meta(torch.randn(3, 32, 32), x)
    assert [r.score(meta) for r in (Bitmap(), Boxes(), Masks(), Volume())] == [0, 0, 0, 0]
    assert AttributionOverlay().score(meta) == pytest.approx(0.95)
    # not an image input (text ids, a waveform): not this renderer's
    assert AttributionOverlay().score(attribution_meta(torch.randn(12), torch.zeros(12, dtype=torch.long))) == 0
    assert AttributionOverlay().score(attribution_meta(torch.randn(1, 8000), torch.zeros(1, 8000))) == 0
    assert AttributionOverlay().score({**meta, "role": "input"}) == 0


def test_large_attribution_on_the_left_tints_the_left_half():
    torch.manual_seed(0)
    x = torch.rand(1, 8, 8)  # an 8x8 digit's size: enlarged like the plain picture
    attribution = torch.zeros(1, 8, 8)
    attribution[..., :4] = torch.rand(1, 8, 4) + 0.5  # for the class, left half only
    plain = Bitmap().render(x, {"input": x})
    picture = AttributionOverlay().render(attribution, context(x, attribution))
    assert picture.width >= plain.width and picture.height > plain.height  # the image, and a legend below
    shown = image_part(picture)
    assert shown.shape[:2] == (plain.height, plain.width)
    change = np.abs(shown - np.asarray(plain.convert("RGB"), dtype=float)).mean(-1)
    half = plain.width // 2
    assert change[:, :half].mean() > 40 and change[:, half:].max() == 0  # zero attribution: the image as it is
    left = shown[:, :half]
    assert (left[..., 0] > left[..., 2]).mean() > 0.95  # red: evidence for the class
    assert colourfulness(shown[:, half:]).max() == 0


def test_negative_values_are_blue_and_the_image_is_un_normalised():
    original = torch.rand(3, 16, 16)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.1]
    x = (original - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    attribution = torch.zeros(3, 16, 16)
    attribution[:, :, 8:] = -1.0  # against the class, right half
    picture = AttributionOverlay().render(attribution, context(x, attribution, normalize={"mean": mean, "std": std}))
    shown = image_part(picture)
    scale = shown.shape[0] // 16
    right = shown[:, 8 * scale:]
    blue = np.array(NEGATIVE, dtype=float)
    assert np.abs(right - blue).max() < 0.25 * 255  # mostly blue, a trace of the image left
    grey = (0.299 * original[0] + 0.587 * original[1] + 0.114 * original[2]) * 255  # luminance of the real image
    left = shown[::scale, :8 * scale:scale, 0]
    assert np.abs(left - grey[:, :8].numpy()).max() <= 1.5


def test_a_coarse_grad_cam_map_is_stretched_over_the_image():
    x = torch.rand(1, 32, 32)
    cam = torch.zeros(1, 4, 4)
    cam[..., 0, 0] = 1.0  # the top-left cell of a coarse layer
    picture = AttributionOverlay().render(cam, context(x, cam, method="interpret.grad_cam", layer="conv2"))
    colour = colourfulness(image_part(picture))
    h, w = colour.shape
    assert colour[: h // 4, : w // 4].mean() > 5 * colour[h // 2:, w // 2:].mean() + 1
    shown = image_part(picture)
    assert (shown[: h // 8, : w // 8, 0] >= shown[: h // 8, : w // 8, 2]).all()  # red: Grad-CAM is >= 0


def test_the_picture_goes_through_the_kernel_as_a_png():
    from kernel import as_media

    x = torch.rand(3, 32, 32)
    attribution = torch.randn(3, 32, 32)
    media = as_media(AttributionOverlay().render(attribution, context(x, attribution)))
    assert media.kind == "image" and media.suffix == ".png" and media.data[:4] == b"\x89PNG"
