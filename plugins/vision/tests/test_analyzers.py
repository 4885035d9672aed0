"""Analyzers: image sizes as stored, and duplicated images within and across splits (leakage)."""
from __future__ import annotations

import shutil

import torch
from PIL import Image

import vision_files
from vision_helpers import prepare
from plugin_vision.analyzers import Duplicates, ImageSizes


def _run(analyzer, batches):
    analyzer.start({})
    for split, inputs in batches:
        analyzer.update({"split": split, "inputs": inputs, "targets": [0] * len(inputs)})
    return analyzer.finish()


def test_image_sizes_and_aspect_ratios_per_split():
    train = [torch.zeros(3, 20, 40), torch.zeros(3, 20, 40), Image.new("RGB", (30, 60))]  # PIL: (width, height)
    valid = [torch.zeros(1, 20, 40)]
    report = _run(ImageSizes(), [("train", train), ("valid", valid)])
    values = report.values
    assert values["images"] == 4 and values["distinct sizes"] == 2
    assert values["smallest (h x w)"] == "20 x 30" and values["largest (h x w)"] == "60 x 40"
    assert values["aspect ratio (w / h) min"] == 0.5 and values["aspect ratio max"] == 2.0
    assert report.table[0] == {"height": 20, "width": 40, "aspect": 2.0, "train": 2, "valid": 1}
    assert report.suggestions["resize"]["use"] == "vision.Resize"  # sizes differ: one size for batching


def test_no_resize_suggested_when_the_workflow_already_resizes():
    from kernel import run_analyzers

    def suggestions(transforms):
        plan = prepare({"use": "vision.digits", "transforms": transforms})
        return dict(run_analyzers(plan))["vision.image_sizes"].suggestions

    assert suggestions([])["resize"] == {"use": "vision.Resize", "size": [32, 32]}  # 8x8 digits as stored
    assert "resize" not in suggestions([{"use": "vision.Resize", "size": 32}])


def test_duplicates_within_and_across_splits_in_an_image_folder(tmp_path):
    vision_files.image_folder(tmp_path / "train", classes=("cat", "dog"), per_class=3, formats=("PNG",))
    vision_files.image_folder(tmp_path / "val", classes=("cat", "dog"), per_class=2, formats=("PNG",), seed=7)
    shutil.copy(tmp_path / "train" / "dog" / "0.png", tmp_path / "train" / "dog" / "copy.png")  # within train
    shutil.copy(tmp_path / "train" / "cat" / "1.png", tmp_path / "val" / "cat" / "leaked.png")  # train -> val
    from kernel import run_analyzers

    plan = prepare({"use": "vision.ImageFolder", "params": {"root": str(tmp_path)},
                    "transforms": [{"use": "vision.RandomHorizontalFlip"}]})
    reports = dict(run_analyzers(plan))
    assert {"vision.duplicates", "vision.image_sizes"} <= set(reports)  # they run by default on vision data
    values = reports["vision.duplicates"].values
    assert values["images"] == 12 and values["distinct images"] == 10
    assert values["duplicates within train"] == 1 and values["duplicates within valid"] == 0
    assert values["valid also in train"] == 1
    assert "deduplicate" in reports["vision.duplicates"].suggestions
    sizes = reports["vision.image_sizes"].values
    assert sizes["distinct sizes"] == 1 and sizes["median (h x w)"] == "10 x 12"


def test_no_duplicates_no_suggestion():
    report = _run(Duplicates(), [("train", [torch.rand(1, 4, 4) for _ in range(3)]), ("valid", [torch.rand(1, 4, 4)])])
    assert report.values["distinct images"] == 4 and not report.suggestions and report.table is None
