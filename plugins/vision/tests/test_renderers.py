"""Renderers draw image tensors as PNGs: bitmaps (normalisation undone), boxes, masks, volumes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vision_helpers import prepare
from plugin_vision.renderers import PALETTE, Bitmap, Boxes, Masks, Volume


def _png(image, path):
    """Write the picture as a PNG and read it back, as a person opening the file would see it."""
    image.save(path)
    return Image.open(path)


def _meta(t, role="input", tags=("vision",)):
    return {"shape": tuple(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "role": role, "tags": tags,
            "classes": None}


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_bitmap_channels_become_grey_rgb_or_rgba(tmp_path, channels, mode):
    t = torch.rand(channels, 20, 16)
    png = _png(Bitmap().render(t, {"input": t}), tmp_path / "x.png")
    assert png.mode == mode
    scale = png.size[1] // 20
    assert png.size == (16 * scale, 20 * scale) and min(png.size) >= 160  # small images enlarged to be seen
    pixels = np.array(png)
    want = (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    got = pixels[::scale, ::scale]
    assert np.array_equal(got.reshape(want.shape), want)


def test_bitmap_undoes_a_known_normalisation(tmp_path):
    original = torch.rand(3, 8, 8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.1]
    normalized = (original - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    context = {"input": normalized, "normalize": {"mean": mean, "std": std}}
    png = np.array(_png(Bitmap().render(normalized, context), tmp_path / "x.png"))
    scale = png.shape[0] // 8
    want = (original.permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(png[::scale, ::scale].astype(float) - want).max() <= 1


def test_bitmap_any_dtype_and_range():
    for t in (torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8), torch.rand(1, 4, 4) * 1000 - 500,
              torch.rand(1, 4, 4) > 0.5):
        image = Bitmap().render(t, {"input": t})
        assert np.array(image).min() >= 0 and np.array(image).max() <= 255


def test_render_in_a_workflow_shows_the_image_before_normalisation(tmp_path):
    from kernel import render_sample

    plan = prepare({"use": "vision.digits", "fraction": 0.1,
                    "transforms": [{"use": "vision.Normalize", "mean": "auto", "std": "auto"}]})
    images = render_sample(plan, 0, "train")
    name, image, _ = images["input"]
    assert name == "vision.bitmap"
    png = np.array(_png(image, tmp_path / "input.png"))
    raw = plan.data.raw["train"][0][0][0]  # the digit as stored, values in [0, 1]
    scale = png.shape[0] // 8
    assert np.abs(png[::scale, ::scale].astype(float) - raw.numpy() * 255).max() <= 1


def test_boxes_are_drawn_over_the_image_in_their_class_colour(tmp_path):
    image = torch.zeros(3, 40, 40)
    target = {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([2])}
    assert Boxes().score(_meta(target["boxes"], "target", ("vision", "detection"))) > Bitmap().score(
        _meta(target["boxes"], "target", ("vision", "detection")))
    png = np.array(_png(Boxes().render(target, {"input": image, "classes": ["a", "b", "bird"]}),
                        tmp_path / "boxes.png").convert("RGB"))
    scale = png.shape[0] // 40
    colour = tuple(int(PALETTE[2][i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(png[5 * scale, 15 * scale]) == colour  # on the top edge
    assert tuple(png[20 * scale, 20 * scale]) == (0, 0, 0)  # inside: the image shows through


def test_masks_are_laid_over_their_image(tmp_path):
    image = torch.zeros(3, 16, 16)
    mask = torch.zeros(16, 16, dtype=torch.int64)
    mask[4:8, 4:8] = 1
    meta = _meta(mask, "target", ("vision", "segmentation"))
    assert Masks().score(meta) == max(r.score(meta) for r in (Bitmap(), Boxes(), Masks(), Volume()))
    png = np.array(_png(Masks().render(mask, {"input": image}), tmp_path / "mask.png").convert("RGB"))
    scale = png.shape[0] // 16
    inside, outside = png[5 * scale, 5 * scale], png[12 * scale, 12 * scale]
    red = np.array([int(PALETTE[1][i:i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(inside.astype(float) - red * 0.5).max() <= 1  # half the class colour over black
    assert not np.array_equal(inside, outside)


def test_class_scores_of_a_segmentation_prediction_are_drawn_as_their_argmax(tmp_path):
    scores = torch.zeros(3, 8, 8)
    scores[2, :, 4:] = 1.0
    meta = _meta(scores, "prediction", ("vision", "segmentation"))
    assert Masks().score(meta) > Bitmap().score(meta)
    png = np.array(_png(Masks().render(scores, {}), tmp_path / "pred.png").convert("RGB"))
    assert not np.array_equal(png[0, 0], png[0, -1])


@pytest.mark.parametrize("shape", [(1, 6, 10, 12), (3, 5, 8, 8), (7, 10, 12)], ids=["C=1 4D", "RGB clip", "3D"])
def test_volumes_become_a_montage_of_slices(tmp_path, shape):
    t = torch.rand(shape)
    meta = _meta(t, "input")
    assert Volume().score(meta) > Bitmap().score(meta)
    png = _png(Volume().render(t, {"input": t}), tmp_path / "volume.png")
    slices = shape[1] if len(shape) == 4 else shape[0]
    h, w = shape[-2:]
    rows = -(-slices // 4)
    assert png.size[0] >= 4 * w and png.size[1] >= rows * h  # every slice on the sheet
