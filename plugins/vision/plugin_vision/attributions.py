"""A picture of an image attribution: the image in grey with the attribution laid over it.

The interpretability plugin asks the kernel's renderer choice to draw each sample's attribution
(meta role ``"attribution"``); ``vision.attribution`` draws those of image inputs. The attribution
is summed over channels (one value per pixel), positive values tinted red, negative ones blue, zero
left grey; the stronger the value, the less of the image shows through. A legend below names the
method, the explained class and the value at full colour.
"""
from __future__ import annotations

import torch

from .renderers import _is_image_shape, to_pil, to_uint8_image

POSITIVE = (214, 39, 40)  # red: evidence for the explained class
NEGATIVE = (31, 119, 180)  # blue: evidence against it
MAX_ALPHA = 0.85  # a full-strength pixel still shows a trace of the image beneath
CLIP_PERCENTILE = 0.99  # a few extreme pixels (saliency is spiky) would otherwise wash out the rest
LEGEND_WIDTH = 320  # wide enough for the method's name under an 8x8 digit's 160-pixel picture


class AttributionOverlay:
    """An attribution of an image input as a heat map over the image (signed: red for, blue against)."""

    def score(self, meta) -> float:
        if meta.get("role") != "attribution":
            return 0.0
        input_shape = tuple(meta.get("input_shape") or ())
        if not _is_image_shape(input_shape) or "float" not in str(meta.get("input_dtype", "")):
            return 0.0
        if len(tuple(meta.get("shape") or ())) not in (2, 3):
            return 0.0
        tags = tuple(meta.get("tags") or ())
        # an image-shaped input of another domain (an audio spectrogram) is that domain's to draw first
        return 0.95 if "vision" in tags or not tags else 0.5

    def render(self, tensor, context):
        from PIL import Image

        context = context or {}
        heat = per_pixel(tensor)
        grey = _grey_input(context, heat.shape)
        heat = _resized(heat, grey.shape)
        scale = full_colour_value(heat)
        overlay = to_pil(blend(grey, heat, scale))
        legend = _legend(context, scale, heat, max(overlay.width, LEGEND_WIDTH))
        canvas = Image.new("RGB", (legend.width, overlay.height + legend.height), "white")
        left = (canvas.width - overlay.width) // 2
        canvas.paste(overlay.convert("RGB"), (left, 0))
        canvas.paste(legend, (0, overlay.height))
        # where the image lies in the picture, for readers that compare it with the plain image
        canvas.info["image_box"] = f"{left},0,{left + overlay.width},{overlay.height}"
        return canvas


def per_pixel(attribution) -> torch.Tensor:
    """One value per pixel: a (C, H, W) attribution summed over its channels, (H, W) as it is."""
    a = torch.nan_to_num(torch.as_tensor(attribution).detach().cpu().float())
    while a.ndim > 2:
        a = a.sum(0)
    return a


def full_colour_value(heat: torch.Tensor) -> float:
    """The |value| drawn at full strength: a high percentile of |attribution|, so one spike does not
    leave everything else invisible; 1 for an all-zero attribution (nothing is tinted)."""
    magnitude = heat.abs().flatten()
    scale = float(torch.quantile(magnitude, CLIP_PERCENTILE)) if magnitude.numel() > 1 else float(magnitude.max())
    if scale <= 0:
        scale = float(magnitude.max())
    return scale if scale > 0 else 1.0


def blend(grey: torch.Tensor, heat: torch.Tensor, scale: float) -> torch.Tensor:
    """uint8 (3, H, W): the grey image tinted towards red (positive) or blue (negative) by |heat| / scale."""
    strength = (heat.abs() / scale).clamp(0, 1) * MAX_ALPHA
    colour = torch.where(heat.unsqueeze(0) >= 0, torch.tensor(POSITIVE).reshape(3, 1, 1),
                         torch.tensor(NEGATIVE).reshape(3, 1, 1)).float()
    mixed = grey.float() * (1 - strength) + colour * strength
    return mixed.round().clamp(0, 255).to(torch.uint8)


def _grey_input(context, size) -> torch.Tensor:
    """The input image as grey uint8 (3, H, W), normalisation undone; mid-grey when no input is given."""
    x = context.get("input")
    if x is None or not _is_image_shape(tuple(torch.as_tensor(x).shape)):
        return torch.full((3, *size), 128, dtype=torch.uint8)
    facts = context.get("facts") or {}
    pixels = to_uint8_image(torch.as_tensor(x), context.get("normalize") or facts.get("normalize")).float()
    if pixels.shape[0] >= 3:  # luminance: colour is kept for the attribution
        pixels = 0.299 * pixels[0] + 0.587 * pixels[1] + 0.114 * pixels[2]
    else:
        pixels = pixels[0]
    return pixels.round().to(torch.uint8).unsqueeze(0).repeat(3, 1, 1)


def _resized(heat: torch.Tensor, shape) -> torch.Tensor:
    """The map at the image's size (a Grad-CAM map of a coarser layer, stretched smoothly)."""
    size = tuple(shape[-2:])
    if tuple(heat.shape) == size:
        return heat
    return torch.nn.functional.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def explained_name(context) -> str:
    explained = context.get("explained")
    if explained is None:
        return "?"
    classes = context.get("classes")
    i = int(explained)
    return str(classes[i]) if classes and 0 <= i < len(classes) else str(i)


def method_name(context) -> str:
    method = str(context.get("method") or "attribution")
    layer = context.get("layer")
    return f"{method} at {layer}" if layer else method


def _legend(context, scale: float, heat: torch.Tensor, width: int):
    """Two lines under the image: what is shown, and a colour bar from -scale through 0 to +scale."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    image = Image.new("RGB", (width, 46), "white")
    pen = ImageDraw.Draw(image)
    pen.text((4, 3), f"{method_name(context)} - explains: {explained_name(context)}", fill="#222222", font=font)
    bar_left, bar_right, top = 60, width - 60, 24
    signed = bool((heat < 0).any())  # Grad-CAM and absolute saliency are never negative: half a bar
    start = -1.0 if signed else 0.0
    for x in range(bar_left, bar_right):
        v = start + (1 - start) * (x - bar_left) / max(1, bar_right - bar_left - 1)
        alpha = abs(v) * MAX_ALPHA
        colour = POSITIVE if v >= 0 else NEGATIVE
        rgb = tuple(round(200 * (1 - alpha) + c * alpha) for c in colour)
        pen.line([(x, top), (x, top + 10)], fill=rgb)
    low = f"-{scale:.3g}" if signed else "0"
    pen.text((4, top - 1), low, fill="#222222", font=font)
    pen.text((bar_right + 4, top - 1), f"+{scale:.3g}", fill="#222222", font=font)
    return image
