"""Analyzers: image sizes as stored, duplicated images within and across splits (leakage), and
whether images reach the model normalised; suggestions are `--set` options a run accepts."""
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
    assert report.suggestions["dataset.transforms"][0]["use"] == "vision.Resize"  # sizes differ: one size


def test_no_resize_suggested_when_the_workflow_already_resizes():
    from kernel import run_analyzers

    def suggestions(transforms):
        plan = prepare({"use": "vision.digits", "transforms": transforms})
        return dict(run_analyzers(plan))["vision.image_sizes"].suggestions

    flip = {"use": "vision.RandomHorizontalFlip", "p": 0.5}
    assert suggestions([flip]) == {"dataset.transforms": [{"use": "vision.Resize", "size": [32, 32]}, flip]}  # 8x8
    assert suggestions([{"use": "vision.Resize", "size": 32}]) == {}


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
    assert "1 image(s) of a held-out split" in values["leakage"] and not reports["vision.duplicates"].suggestions
    sizes = reports["vision.image_sizes"].values
    assert sizes["distinct sizes"] == 1 and sizes["median (h x w)"] == "10 x 12"


def test_no_duplicates_no_suggestion():
    report = _run(Duplicates(), [("train", [torch.rand(1, 4, 4) for _ in range(3)]), ("valid", [torch.rand(1, 4, 4)])])
    assert report.values["distinct images"] == 4 and not report.suggestions and report.table is None


def test_normalisation_is_suggested_only_when_the_workflow_does_not_normalise():
    from kernel import run_analyzers

    def report(transforms):
        return dict(run_analyzers(prepare({"use": "vision.digits", "transforms": transforms})))["vision.normalization"]

    resize = {"use": "vision.Resize", "size": 32}
    raw = report([resize])
    assert raw.values["normalised"] == "no"
    assert raw.suggestions == {"dataset.transforms": [resize, {"use": "vision.Normalize"}]}
    assert report([resize, {"use": "vision.Normalize"}]).suggestions == {}  # the automatic Normalize: done
    assert report([resize, {"use": "vision.Normalize", "mean": [0.3], "std": [0.4]}]).suggestions == {}


def test_the_printed_suggestions_are_accepted_by_kernel_run(cli, tmp_path, workspace):
    """What `kernel analyze` prints as a suggestion, pasted back as printed, makes a valid run."""
    import shlex

    path = tmp_path / "wf.toml"
    path.write_text('name = "digits"\n[dataset]\nuse = "vision.digits"\n'
                    'transforms = [{ use = "vision.RandomHorizontalFlip" }]\n'
                    '[[models]]\nuse = "vision.simple_cnn"\n[trainer]\nuse = "kernel.supervised"\nepochs = 1\n')
    analyzed = cli("analyze", path, "-o", tmp_path / "reports")
    assert analyzed.returncode == 0, analyzed.stderr
    options = [line.split("adopt: ", 1)[1] for line in analyzed.stdout.splitlines() if "adopt: " in line]
    assert len(options) == 2, analyzed.stdout  # vision.image_sizes (Resize) and vision.normalization
    for option in options:
        assert option.startswith("--set 'dataset.transforms=[")
        proc = cli("run", "--dry-run", path, *shlex.split(option))
        assert proc.returncode == 0, f"{option}\n{proc.stdout}\n{proc.stderr}"
