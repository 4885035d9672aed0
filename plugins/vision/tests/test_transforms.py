"""Transforms by name with their parameters; images of any kind become tensors; Normalize fits itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import kernel
from vision_helpers import prepare
from kernel import KernelError


def test_a_transform_by_name_takes_torchvision_parameters_given_as_text():
    x = torch.rand(1, 8, 8)
    ours = kernel.create("vision.Resize", size=16, interpolation="nearest")
    assert torch.equal(ours(x), v2.Resize(16, interpolation=v2.InterpolationMode.NEAREST)(x))
    assert ours(x).shape == (1, 16, 16)


def test_nested_transforms_and_dtype_names():
    composed = kernel.create("vision.Compose", transforms=[{"use": "vision.Resize", "size": 12},
                                                           {"use": "vision.CenterCrop", "size": 10}])
    assert composed(torch.rand(3, 8, 8)).shape == (3, 10, 10)
    to_bytes = kernel.create("vision.ToDtype", dtype="uint8")
    assert to_bytes(torch.zeros(3, 2, 2)).dtype == torch.uint8


def test_pil_images_and_arrays_become_float_tensors_without_asking():
    from PIL import Image

    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    flip = kernel.create("vision.RandomHorizontalFlip", p=1.0)
    for image in (Image.fromarray(pixels, "RGB"), pixels):
        out = flip(image)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 4, 5)
        want = torch.from_numpy(pixels[:, ::-1].copy()).permute(2, 0, 1).float() / 255
        assert torch.allclose(out, want)


def test_byte_only_transforms_take_float_images():
    out = kernel.create("vision.RandomPosterize", bits=2, p=1.0)(torch.full((3, 4, 4), 0.9))
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full((3, 4, 4), 192 / 255))


def test_geometric_transforms_move_a_mask_with_the_image():
    flip = kernel.create("vision.RandomHorizontalFlip", p=1.0)
    image, mask = torch.rand(3, 4, 6), torch.arange(24).reshape(4, 6)
    out_image, out_mask = flip(image, mask)
    assert torch.equal(out_mask, mask.flip(-1)) and torch.equal(out_image, image.flip(-1))
    assert flip(image, 3)[1] == 3  # a class label passes through


def test_an_unknown_parameter_is_named_with_a_suggestion():
    with pytest.raises(KernelError) as err:
        kernel.create("vision.Resize", size=8, interpolaton="nearest")
    text = str(err.value)
    assert "vision.Resize" in text and "'interpolaton'" in text and "did you mean 'interpolation'" in text


def test_a_bad_value_is_a_clear_error():
    with pytest.raises(KernelError, match="interpolation: 'cubic' is not one of"):
        kernel.create("vision.Resize", size=8, interpolation="cubic")


def _stats(images: torch.Tensor):
    flat = images.double().transpose(0, 1).reshape(images.shape[1], -1)
    return flat.mean(1), flat.std(1)


def test_normalize_auto_is_fitted_on_the_training_split_only():
    plan = prepare({"use": "vision.digits", "split": {"valid": 0.25},
                    "transforms": [{"use": "vision.Resize", "size": 12},
                                   {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]})
    resize = plan.data.transforms[0]
    normalize = plan.data.transforms[1]
    raw = plan.data.raw
    train = torch.stack([resize(raw["train"][i][0]) for i in range(len(raw["train"]))])
    everything = torch.cat([train, torch.stack([resize(raw["valid"][i][0]) for i in range(len(raw["valid"]))])])
    mean, std = _stats(train)
    assert normalize.mean == pytest.approx(mean.tolist(), abs=1e-5)
    assert normalize.std == pytest.approx(std.tolist(), abs=1e-5)
    assert normalize.mean != pytest.approx(_stats(everything)[0].tolist(), abs=1e-5)  # validation left out
    # what the model sees from the training split is centred and scaled
    seen = torch.stack([plan.data.splits["train"][i][0] for i in range(len(plan.data.splits["train"]))])
    seen_mean, seen_std = _stats(seen)
    assert abs(float(seen_mean[0])) < 1e-4 and abs(float(seen_std[0]) - 1) < 1e-3
    assert plan.data.facts["normalize"] == {"mean": normalize.mean, "std": normalize.std}


def test_normalize_state_survives_a_checkpoint():
    import io

    fitted = kernel.create("vision.Normalize", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.1])
    buf = io.BytesIO()
    torch.save(fitted.state_dict(), buf)
    buf.seek(0)
    fresh = kernel.create("vision.Normalize")
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.rand(3, 4, 4)
    assert torch.equal(fresh(x), fitted(x))


def test_normalize_values_checked():
    with pytest.raises(KernelError, match="std must be positive"):
        kernel.create("vision.Normalize", mean=[0.5], std=[0.0])
    with pytest.raises(KernelError, match="never fitted"):
        kernel.create("vision.Normalize")(torch.rand(1, 2, 2))
    with pytest.raises(KernelError, match="2 mean and 2 std values for images with 3 channel"):
        kernel.create("vision.Normalize", mean=[0.5, 0.5], std=[0.2, 0.2])(torch.rand(3, 2, 2))
