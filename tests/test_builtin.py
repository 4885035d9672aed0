"""The kernel's own generic components, used the way a workflow uses them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import kernel
from kernel import KernelError
from kernel.build import prepare
from kernel.workflow import Workflow


def test_synthetic_data_is_reproducible_and_learnable():
    a = kernel.create("kernel.synthetic", num_samples=50, shape=[3], num_classes=3, seed=1)
    b = kernel.create("kernel.synthetic", num_samples=50, shape=[3], num_classes=3, seed=1)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert a.classes == ["class_0", "class_1", "class_2"]
    reg = kernel.create("kernel.synthetic", num_samples=20, task="regression")
    assert reg[0][1].dtype == torch.float32 and reg[0][1].shape == (1,)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_tensors_reads_npz_and_pt_files(tmp_path, suffix):
    x = np.random.default_rng(0).normal(size=(30, 2, 5)).astype("float32")
    y = np.arange(30) % 3
    path = tmp_path / f"data{suffix}"
    if suffix == ".npz":
        np.savez(path, inputs=x, targets=y, classes=np.array(["a", "b", "c"]))
    else:
        torch.save({"inputs": torch.from_numpy(x), "targets": torch.from_numpy(y), "classes": ["a", "b", "c"]}, path)
    ds = kernel.create("kernel.tensors", path=str(path))
    assert len(ds) == 30 and ds.classes == ["a", "b", "c"]
    assert torch.allclose(ds[4][0], torch.from_numpy(x[4])) and int(ds[4][1]) == 1


def test_tensors_says_which_key_is_missing(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), targets=np.zeros(3))
    with pytest.raises(KernelError, match="has no 'inputs'; it has: x, targets"):
        kernel.create("kernel.tensors", path=str(path))


def plan_for(**dataset):
    return prepare(Workflow(name="t", seed=0, dataset={"use": "kernel.synthetic", **dataset},
                            models=[{"use": "kernel.mlp"}]))


def test_facts_fill_the_model_and_the_split_is_seeded():
    plan = plan_for(num_samples=100, shape=[2, 6], num_classes=5, split={"valid": 0.3})
    assert len(plan.data.train) == 70 and len(plan.data.valid) == 30
    assert plan.data.facts["num_classes"] == 5 and plan.data.facts["in_channels"] == 2
    model, filled = plan.model(0)
    assert filled == {"input_shape": (2, 6), "num_classes": 5}
    assert model(torch.zeros(4, 2, 6)).shape == (4, 5)
    again = plan_for(num_samples=100, shape=[2, 6], num_classes=5, split={"valid": 0.3})
    assert again.data.fingerprint == plan.data.fingerprint
    assert plan_for(num_samples=100, shape=[2, 6], num_classes=5, seed=7).data.fingerprint != plan.data.fingerprint


def test_fraction_uses_part_of_each_split():
    plan = plan_for(num_samples=200, fraction=0.25)
    assert len(plan.data.train) == 40 and len(plan.data.valid) == 10


class CountingScaler:
    """A fitted transform for the test: remembers how many samples it was fitted on."""

    def __init__(self):
        self.seen, self.scale = 0, 1.0

    def fit(self, dataset):
        self.seen = len(dataset)
        self.scale = float(torch.stack([dataset[i][0] for i in range(len(dataset))]).abs().max())

    def __call__(self, x):
        return x / self.scale

    def facts(self):
        return {"scale": self.scale}


def test_fitted_transforms_see_only_the_training_split():
    wf = Workflow(name="t", dataset={"use": "kernel.synthetic", "num_samples": 100,
                                     "transforms": [{"use": "tests.test_builtin:CountingScaler"}]},
                  models=[{"use": "kernel.mlp"}])
    plan = prepare(wf)
    scaler = plan.data.transforms[0]
    assert scaler.seen == 80
    assert plan.data.facts["scale"] == scaler.scale
    assert float(plan.data.train[0][0].abs().max()) <= 1.0


def test_class_balance_counts_and_catches_sorted_labels():
    analyzer = kernel.create("kernel.class_balance")
    analyzer.start({"classes": ["a", "b"]})
    labels = [0] * 50 + [1] * 50
    analyzer.update({"split": "train", "inputs": [None] * 100, "targets": [torch.tensor(v) for v in labels]})
    report = analyzer.finish()
    assert report.table == [{"class": "a", "train": 50}, {"class": "b", "train": 50}]
    assert report.values["order randomness"] < 0.1
    shuffled = kernel.create("kernel.class_balance")
    shuffled.start({})
    order = torch.randperm(100, generator=torch.Generator().manual_seed(0))
    shuffled.update({"split": "train", "inputs": [None] * 100, "targets": [labels[i] for i in order]})
    assert shuffled.finish().values["order randomness"] > 0.8


def test_value_stats_match_torch_over_several_batches():
    x = torch.randn(64, 3, 5, 5) * torch.tensor([1.0, 2.0, 0.5])[:, None, None] + torch.tensor([0.0, 1.0, -1.0])[:, None, None]
    stats = kernel.create("kernel.value_stats")
    stats.start({})
    for chunk in x.split(10):
        stats.update({"split": "train", "inputs": list(chunk), "targets": [0] * len(chunk)})
    stats.update({"split": "valid", "inputs": [torch.full((3, 5, 5), 100.0)], "targets": [0]})
    report = stats.finish()
    mean, std = [row["mean"] for row in report.table], [row["std"] for row in report.table]
    per_channel = x.transpose(0, 1).reshape(3, -1)
    assert mean == pytest.approx(per_channel.mean(1).tolist(), abs=1e-4)
    assert std == pytest.approx(per_channel.std(1).tolist(), abs=1e-4)


def test_renderers_pick_labels_for_targets_and_draw_images():
    plan = plan_for(num_samples=20, shape=[4, 4])
    x, y = plan.data.train[0]
    meta = {"shape": (), "dtype": "int64", "role": "target", "tags": (), "classes": plan.data.classes}
    name, renderer = plan.renderer_for(meta)
    assert name == "kernel.labels"
    image = renderer.render(y, {"classes": plan.data.classes})
    assert image.size[0] > 10
    probs = torch.tensor([0.1, 2.0, 0.3, -1.0])
    name, renderer = plan.renderer_for({**meta, "shape": (4,), "dtype": "float32", "role": "prediction"})
    assert name == "kernel.labels" and renderer.render(probs, {"classes": plan.data.classes}).size[1] > 10
    name, renderer = plan.renderer_for({"shape": (4, 4), "dtype": "float32", "role": "input", "tags": (), "classes": None})
    assert name == "kernel.values" and renderer.render(x, {}).mode == "RGB"


@pytest.mark.parametrize("name,preds,target,expected", [
    ("kernel.accuracy", torch.tensor([[2.0, 0.1, 0], [0, 3.0, 0], [0, 0, 1.0]]), torch.tensor([0, 1, 1]), 2 / 3),
    ("kernel.mse", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]), 2.0),
    ("kernel.mae", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]), 1.0),
])
def test_metrics_are_torchmetrics_with_facts_filled(name, preds, target, expected):
    plan = plan_for(num_samples=30, num_classes=3)
    metric = plan.build(name, "metric")
    metric.update(preds, target)
    assert float(metric.compute()) == pytest.approx(expected)
    metric.reset()


def test_confusion_matrix_is_classes_by_classes():
    plan = plan_for(num_samples=30, num_classes=3)
    cm = plan.build("kernel.confusion_matrix", "metric")
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    assert cm.compute().tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]


def test_a_fact_fills_only_parameters_whose_type_admits_it():
    """Facts fill parameters by name; a name shared by accident must not pass a wrong-typed value
    (the normalisation fact `normalize = {mean, std}` met the confusion matrix's `normalize`)."""
    import numpy as np

    from kernel.build import call_with_facts

    def target(num_classes: int, normalize: str | None = None, scaled: bool = True,
               input_shape: tuple = (1,), gain: float = 1.0, anything=None):
        return locals()

    facts = {"num_classes": np.int64(4), "normalize": {"mean": [0.5], "std": [0.2]}, "scaled": {"x": 1},
             "input_shape": [3, 8, 8], "gain": 2, "anything": "kept"}
    built, filled = call_with_facts(target, {}, facts)
    assert filled == {"num_classes": 4, "input_shape": [3, 8, 8], "gain": 2, "anything": "kept"}
    assert built["normalize"] is None and built["scaled"] is True
    # with a Normalize transform in the workflow, the confusion matrix metric still builds
    from kernel.builtin.metrics import confusion_matrix

    metric, filled = call_with_facts(confusion_matrix, {}, {"num_classes": 3, "normalize": facts["normalize"]})
    assert filled == {"num_classes": 3} and metric.num_classes == 3


def test_value_stats_leave_out_index_inputs():
    """Token ids (int64) are not measurements: no normalisation is suggested for them."""
    stats = kernel.create("kernel.value_stats")
    stats.start({})
    stats.update({"split": "train", "inputs": [torch.tensor([5, 900, 3]), torch.tensor([7, 1])], "targets": [0, 1]})
    report = stats.finish()
    assert not report.suggestions and "indices" in report.values["note"]
    stats.start({})
    stats.update({"split": "train", "inputs": [torch.tensor([[0, 255]], dtype=torch.uint8)], "targets": [0]})
    assert stats.finish().table[0]["mean"] == 127.5  # uint8 pixels are still measured


def test_samples_are_chosen_across_the_classes(tmp_path):
    """One sample per class, in class order, before a second of any class (not the first 8 samples)."""
    plan = plan_for(num_samples=120, shape=[4], num_classes=12, split={"valid": 0.5})
    entries = kernel.write_samples(plan, tmp_path)
    labels = [int(plan.data.splits["valid"][e["index"]][1]) for e in entries]
    assert labels == list(range(12))  # every class once: 12 samples, not the default 8
    assert all((tmp_path / e["input"]).is_file() and e["input"].endswith(".png") for e in entries)
    few = kernel.write_samples(plan, tmp_path / "few", count=14)
    assert [int(plan.data.splits["valid"][e["index"]][1]) for e in few][:12] == list(range(12))
    regression = plan_for(num_samples=20, task="regression", split={"valid": 0.5})
    assert [e["index"] for e in kernel.write_samples(regression, tmp_path / "r", count=3)] == [0, 1, 2]


def test_what_a_renderer_returns_is_saved_with_its_own_suffix(tmp_path):
    from PIL import Image

    from kernel.rendering import as_media

    picture = as_media(Image.new("RGB", (4, 4)))
    assert (picture.kind, picture.suffix) == ("image", ".png")
    assert picture.save(tmp_path / "0_input.png") == tmp_path / "0_input.png"
    assert Image.open(tmp_path / "0_input.png").size == (4, 4)
    page = as_media("<b>hi</b>")
    assert page.save(tmp_path / "0_target") == tmp_path / "0_target.html"
    sound = kernel.Media("audio", b"RIFF....WAVE", ".wav")
    assert sound.save(tmp_path / "0_input.png") == tmp_path / "0_input.wav"  # `kernel render` names a .png
    with pytest.raises(ValueError, match="suffix"):
        kernel.Media("audio", b"", ".png")
    with pytest.raises(KernelError, match="returned a int"):
        as_media(3)


def _class_balance(labels, task="multiclass", classes=None):
    analyzer = kernel.create("kernel.class_balance")
    analyzer.start({"facts": {"task": task}, "classes": classes})
    analyzer.update({"split": "train", "inputs": [None] * len(labels), "targets": labels})
    return analyzer.finish()


def test_class_weights_are_suggested_only_for_imbalanced_classes_as_a_loss_setting():
    balanced = _class_balance([torch.tensor(i % 3) for i in range(30)])
    assert balanced.suggestions == {}  # weights of 1 change nothing
    skewed = _class_balance([torch.tensor(0)] * 30 + [torch.tensor(2)] * 10)  # class 1 absent
    assert skewed.suggestions == {"trainer.loss": {"use": "torch.nn.CrossEntropyLoss",
                                                   "weight": [0.6667, 1.0, 2.0]}}
    assert skewed.set_options() == ["--set 'trainer.loss={ use = \"torch.nn.CrossEntropyLoss\", "
                                    "weight = [0.6667, 1.0, 2.0] }'"]
    last_absent = _class_balance([torch.tensor(0)] * 30 + [torch.tensor(1)] * 10, classes=["a", "b", "c", "d"])
    assert last_absent.suggestions["trainer.loss"]["weight"] == [0.6667, 2.0, 1.0, 1.0]  # one weight per class


def test_regression_targets_are_not_counted_as_classes():
    report = _class_balance([torch.tensor([0.2]), torch.tensor([1.7]), torch.tensor([0.9])], task="regression")
    assert report.table is None and report.suggestions == {} and "not class labels" in report.values["note"]
    floats = _class_balance([torch.tensor(0.2), torch.tensor(1.7)], task=None)  # no task known: floats are no labels
    assert floats.table is None


def test_a_printed_suggestion_is_accepted_by_kernel_run_as_printed(tmp_path):
    """The class weights for an imbalanced file, adopted with the very `--set` text the report gives."""
    import os
    import shlex
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    labels = np.array([0] * 45 + [1] * 15)
    rng.shuffle(labels)
    np.savez(tmp_path / "d.npz", inputs=rng.normal(size=(60, 4)).astype("float32"), targets=labels)
    (tmp_path / "wf.toml").write_text(f'name = "imbalanced"\n[dataset]\nuse = "kernel.tensors"\npath = "{tmp_path / "d.npz"}"\n'
                                      '[[models]]\nuse = "kernel.mlp"\n[trainer]\nuse = "kernel.supervised"\n'
                                      'epochs = 1\n')
    plan = prepare(Workflow.from_file(tmp_path / "wf.toml"))
    (report,) = [r for name, r in kernel.run_analyzers(plan) if name == "kernel.class_balance"]
    (option,) = report.set_options()
    proc = subprocess.run([sys.executable, "-m", "kernel.cli", "run", "--dry-run", "wf.toml", *shlex.split(option)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERNEL_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
