"""Bad input through the real `kernel run`: exit code 2, one clear line, no traceback, nothing half-written."""
from __future__ import annotations

import pytest

import vision_files
from vision_helpers import run_dirs, statuses

HEAD = """
name = "bad"
[dataset]
{dataset}
[[models]]
use = "{model}"
[trainer]
epochs = 1
batch_size = 4
"""


def _workflow(tmp_path, dataset: str, model: str = "vision.simple_cnn"):
    path = tmp_path / "bad.toml"
    path.write_text(HEAD.format(dataset=dataset.replace("{tmp}", str(tmp_path)), model=model))
    return path


def _folder_with_a_corrupt_image(tmp_path):
    vision_files.image_folder(tmp_path / "photos", per_class=3, size=(16, 16))
    return vision_files.corrupt_image(tmp_path / "photos" / "dog" / "truncated.png")


CASES = {
    "missing dataset folder": (
        'use = "vision.CIFAR10"\nroot = "{tmp}/no-such-folder"', "vision.simple_cnn",
        ["dataset files not found", "data_batch_1", "no-such-folder/cifar-10-batches-py"]),
    "download offline": (
        'use = "vision.MNIST"\nroot = "{tmp}/mnist"\ndownload = true', "vision.simple_cnn",
        ["downloads nothing", "train-images-idx3-ubyte", "mnist/MNIST/raw"]),
    "corrupt image, fail (the default)": (
        'use = "vision.ImageFolder"\nroot = "{tmp}/photos"', "vision.simple_cnn",
        ["photos/dog/truncated.png", "is not a readable image", 'on_bad = "skip"']),
    "the old spelling on_error": (  # one spelling in every plugin: on_bad; the kernel lists what there is
        'use = "vision.ImageFolder"\nroot = "{tmp}/photos"\non_error = "skip"', "vision.simple_cnn",
        ["on_error", "unknown parameter", "on_bad"]),
    "unknown transform parameter": (
        'use = "vision.digits"\ntransforms = [{ use = "vision.Resize", sise = 32 }]', "vision.simple_cnn",
        ["dataset.transforms[0]", "sise", "did you mean 'size'"]),
    "model that cannot take the shape": (
        'use = "vision.digits"', "vision.alexnet",
        ["vision.alexnet", "(1, 8, 8)", 'use = "vision.Resize", size = 63']),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_clear_line_and_leaves_no_run(case, cli, tmp_path, workspace):
    dataset, model, words = CASES[case]
    if "corrupt" in case:
        _folder_with_a_corrupt_image(tmp_path)
    proc = cli("run", _workflow(tmp_path, dataset, model))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    # setup progress ("kernel: building dataset ...") may come first; the error is one line, the last
    lines = [line for line in proc.stderr.splitlines() if line.startswith("kernel: error")]
    assert len(lines) == 1 and proc.stderr.strip().splitlines()[-1] == lines[0], proc.stderr
    for word in words:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"
    assert run_dirs(workspace) == [] and "running" not in statuses(workspace)


def test_corrupt_image_skipped_and_counted_when_the_workflow_says_so(cli, tmp_path):
    _folder_with_a_corrupt_image(tmp_path)
    path = _workflow(tmp_path, 'use = "vision.ImageFolder"\nroot = "{tmp}/photos"\non_bad = "skip"')
    proc = cli("run", "--dry-run", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped 1 unreadable image file(s)" in proc.stderr and "truncated.png" in proc.stderr
    assert "train 5, valid 1 samples" in proc.stdout  # the six good images, split 80/20
