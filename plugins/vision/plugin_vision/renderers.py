"""Pictures of image tensors: bitmaps, boxes over the image, masks over the image, volumes as slices.

The kernel picks, for each tensor of a sample, the renderer with the highest ``score(meta)``; the
scores here say how sure each one is that the tensor is what it draws. Class names come from the
kernel (``context["classes"]``), the normalisation to undo from ``context["normalize"]``.
"""
from __future__ import annotations

import torch

MIN_SIDE = 160  # small images (8x8 digits) are enlarged, pixel for pixel, to be seen


def _is_image_shape(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3, 4) and shape[1] >= 2 and shape[2] >= 2


def to_uint8_image(t: torch.Tensor, normalize: dict | None = None) -> torch.Tensor:
    """Any (C, H, W) tensor as uint8 pixels: a known normalisation undone, then values put in 0..255."""
    t = torch.as_tensor(t).detach().cpu()
    if t.dtype == torch.uint8:
        return t
    if t.dtype == torch.bool:
        return t.to(torch.uint8) * 255
    t = t.float()
    if normalize and t.ndim == 3:
        mean = torch.as_tensor(normalize.get("mean", []), dtype=torch.float32)
        std = torch.as_tensor(normalize.get("std", []), dtype=torch.float32)
        if mean.numel() in (1, t.shape[0]) and std.numel() in (1, t.shape[0]):
            t = t * std.reshape(-1, 1, 1) + mean.reshape(-1, 1, 1)
    t = torch.nan_to_num(t)
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1 + 1e-3:  # not [0, 1] pixels: stretch what is there
        if hi - lo < 1e-12:
            t = torch.zeros_like(t)
        elif lo >= 0 and hi <= 255 and not torch.is_floating_point(torch.as_tensor(t)):
            t = t / 255
        else:
            t = (t - lo) / (hi - lo)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)


def to_pil(pixels: torch.Tensor):
    """uint8 (C, H, W) as a PIL image (L, RGB or RGBA), enlarged when tiny."""
    from PIL import Image

    c = pixels.shape[0]
    array = pixels.permute(1, 2, 0).contiguous().numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    image = Image.fromarray(array[:, :, 0] if c == 1 else array, mode)
    side = min(image.size)
    if side < MIN_SIDE:
        scale = max(1, MIN_SIDE // max(1, side))
        image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    return image


def _input_pixels(context, size=None) -> torch.Tensor | None:
    x = context.get("input")
    if x is None:
        return None
    x = torch.as_tensor(x)
    if not _is_image_shape(tuple(x.shape)):
        return None
    pixels = to_uint8_image(x, context.get("normalize"))
    if pixels.shape[0] == 1:
        pixels = pixels.repeat(3, 1, 1)
    elif pixels.shape[0] == 4:
        pixels = pixels[:3]
    if size is not None and tuple(pixels.shape[-2:]) != tuple(size):
        return None
    return pixels


class Bitmap:
    """An image tensor as a picture: 1 (grey), 3 (RGB) or 4 (RGBA) channels, any dtype or value range."""

    def score(self, meta) -> float:
        shape = tuple(meta["shape"])
        if meta["role"] == "attribution":  # an attribution is not pixels: vision.attribution draws it
            return 0.0
        if _is_image_shape(shape):
            return 0.9 if "vision" in meta.get("tags", ()) or meta["role"] == "input" else 0.6
        if len(shape) == 2 and meta["role"] == "input" and min(shape) >= 2 and "vision" in meta.get("tags", ()):
            return 0.5
        return 0.0

    def render(self, tensor, context):
        t = torch.as_tensor(tensor)
        if t.ndim == 2:
            t = t.unsqueeze(0)
        x = context.get("input")
        is_input = x is not None and torch.as_tensor(x).shape == t.shape
        return to_pil(to_uint8_image(t, context.get("normalize") if is_input else None))


#: distinct colours for classes, boxes and masks
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075"]


class Boxes:
    """Detection boxes (N, 4) in x1, y1, x2, y2 pixels, with their labels, drawn over the image."""

    def score(self, meta) -> float:
        shape = tuple(meta["shape"])
        if meta["role"] in ("input", "attribution"):
            return 0.0
        if len(shape) == 2 and shape[1] in (4, 5, 6) and "detection" in meta.get("tags", ()):
            return 0.95
        return 0.0

    def render(self, tensor, context):
        from torchvision.utils import draw_bounding_boxes

        labels = None
        if isinstance(tensor, dict):
            labels = tensor.get("labels")
            tensor = tensor["boxes"]
        boxes = torch.as_tensor(tensor).detach().cpu().float()
        if boxes.shape[-1] > 4 and labels is None:
            labels = boxes[:, 4].long()
        boxes = boxes[:, :4]
        image = _input_pixels(context)
        if image is None:
            h = int(boxes[:, 3].max().item()) + 1 if len(boxes) else 32
            w = int(boxes[:, 2].max().item()) + 1 if len(boxes) else 32
            image = torch.full((3, max(h, 2), max(w, 2)), 255, dtype=torch.uint8)
        classes = context.get("classes")
        names = None
        if labels is not None:
            names = [classes[int(i)] if classes and 0 <= int(i) < len(classes) else str(int(i))
                     for i in torch.as_tensor(labels).reshape(-1)]
        colors = [PALETTE[int(i) % len(PALETTE)] for i in torch.as_tensor(labels).reshape(-1)] if labels is not None \
            else "#e6194b"
        drawn = draw_bounding_boxes(image, boxes, labels=names, colors=colors, width=2)
        return to_pil(drawn)


class Masks:
    """A segmentation mask (H, W of class indices, or C, H, W of class scores) laid over its image."""

    def score(self, meta) -> float:
        shape, dtype, tags = tuple(meta["shape"]), meta["dtype"], meta.get("tags", ())
        if meta["role"] in ("input", "attribution"):
            return 0.0
        if len(shape) == 2 and ("int" in dtype or dtype == "bool") and min(shape) >= 2:
            return 0.95 if "segmentation" in tags else 0.5
        if len(shape) == 3 and "float" in dtype and meta["role"] == "prediction" and "segmentation" in tags:
            return 0.95
        return 0.0

    def render(self, tensor, context):
        from torchvision.utils import draw_segmentation_masks

        t = torch.as_tensor(tensor).detach().cpu()
        if t.ndim == 3:
            t = t.argmax(0)
        labels = t.long()
        present = [int(v) for v in labels.unique() if 0 <= int(v) < 255]  # 255: the VOC "ignore" border
        image = _input_pixels(context, size=labels.shape)
        if image is None:
            image = torch.zeros((3, *labels.shape), dtype=torch.uint8)
        if not present:
            return to_pil(image)
        masks = torch.stack([labels == v for v in present])
        colors = [PALETTE[v % len(PALETTE)] for v in present]
        return to_pil(draw_segmentation_masks(image, masks, alpha=0.5, colors=colors))


class Volume:
    """A 3D (D, H, W) or 4D (C, D, H, W) tensor that is not an image, as a montage of its slices."""

    MAX_SLICES = 16

    def score(self, meta) -> float:
        shape = tuple(meta["shape"])
        if meta["role"] == "attribution":
            return 0.0
        if len(shape) == 4 and min(shape[1:]) >= 1 and shape[-1] >= 2 and shape[-2] >= 2:
            return 0.7
        if len(shape) == 3 and not _is_image_shape(shape) and min(shape[1:]) >= 2:
            return 0.6 if "vision" in meta.get("tags", ()) else 0.3
        return 0.0

    def render(self, tensor, context):
        from torchvision.utils import make_grid

        t = torch.as_tensor(tensor).detach().cpu()
        if t.ndim == 4:
            if t.shape[0] in (1, 3):
                slices = t.permute(1, 0, 2, 3)  # (C, T, H, W) -> frames
            else:
                slices = t[0].unsqueeze(1)  # many channels: the first channel's slices
        else:
            slices = t.unsqueeze(1)
        if len(slices) > self.MAX_SLICES:
            pick = torch.linspace(0, len(slices) - 1, self.MAX_SLICES).round().long()
            slices = slices[pick]
        pixels = torch.stack([to_uint8_image(s) for s in slices])
        grid = make_grid(pixels, nrow=min(4, len(pixels)), padding=1, pad_value=128)
        return to_pil(grid)
