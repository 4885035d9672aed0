"""The majority-class baseline: what always answering the most frequent training class scores on the
valid split, stored with each classification run and shown beside the models' accuracy."""
from __future__ import annotations

import json

import numpy as np
import torch

from kernel.data import Subset, majority_baseline, split_targets


def imbalanced(path, n=200):
    """Labels 0 for 70 % of the samples, then 1 and 2; named classes; float64 inputs (numpy's default)."""
    rng = np.random.default_rng(0)
    targets = np.array([0] * 140 + [1] * 40 + [2] * 20)
    rng.shuffle(targets)
    inputs = rng.normal(size=(n, 6)).astype("float32") + targets[:, None]
    np.savez(path, inputs=inputs, targets=targets, classes=np.array(["cat", "dog", "eel"]))
    return targets


def test_split_targets_follow_nested_subsets_and_refuse_non_classes():
    class Items:  # no `targets` attribute: the items are read
        def __init__(self, ys):
            self.ys = ys

        def __len__(self):
            return len(self.ys)

        def __getitem__(self, i):
            return torch.zeros(2), self.ys[i]

    base = Items([torch.tensor(i % 3) for i in range(10)])
    assert split_targets(Subset(Subset(base, [9, 8, 7, 6]), [1, 3])) == [8 % 3, 6 % 3]
    assert split_targets(Items([0.5, 1.5])) is None  # regression
    assert split_targets(Items([torch.zeros(4, 4, dtype=torch.long)])) is None  # a mask per sample


def test_runs_store_the_baseline_and_compare_shows_it(workspace, write_workflow, cli):
    targets = imbalanced(workspace / "data.npz")
    wf = write_workflow(f"""
        name = "imb"
        [dataset]
        use = "kernel.tensors"
        path = "{workspace / 'data.npz'}"
        split = {{ valid = 0.25 }}
        [[models]]
        use = "kernel.linear"
        [trainer]
        epochs = 1
        tensorboard = false
    """)
    out = cli("run", str(wf), "--quiet")
    assert out.returncode == 0, out.stderr
    # the closing lines say which model is best and where the files are
    lines = out.stdout.splitlines()
    assert lines[-3].startswith("best: linear (valid/accuracy ") and lines[-2].startswith(f"runs: {workspace / 'runs'} ")
    assert lines[-1].startswith("next: kernel report --workflow imb -o report.html")
    run_json = json.loads(next((workspace / "runs").glob("imb-*/run.json")).read_text())
    baseline = run_json["baseline"]
    assert baseline["metric"] == "valid/accuracy" and baseline["class"] == "cat"

    from kernel.build import prepare
    from kernel.workflow import Workflow

    data = prepare(Workflow.from_file(wf)).data
    valid = split_targets(data.raw["valid"])
    assert len(valid) == 50 and baseline["accuracy"] == valid.count(0) / 50
    assert sorted(split_targets(data.raw["train"]) + valid) == sorted(targets.tolist())
    assert majority_baseline(data) == baseline

    table = cli("compare", "--json")
    data = json.loads(table.stdout)
    assert "baseline" in data["columns"] and data["rows"][0]["baseline"] == baseline["accuracy"]


def test_no_baseline_for_regression(workspace, cli, write_workflow):
    wf = write_workflow("""
        name = "reg"
        [dataset]
        use = "kernel.synthetic"
        num_samples = 64
        task = "regression"
        [[models]]
        use = "kernel.linear"
        [trainer]
        epochs = 1
        tensorboard = false
    """)
    assert cli("run", str(wf), "--quiet").returncode == 0
    info = json.loads(next((workspace / "runs").glob("reg-*/run.json")).read_text())
    assert info["baseline"] is None
    assert "baseline" not in json.loads(cli("compare", "--json").stdout)["columns"]


def test_the_report_page_carries_the_baseline_of_each_run(workspace):
    from kernel.report.page import build_page
    from kernel.run_reader import open_run
    from kernel.store import RunStore

    store = RunStore(workspace)
    for model, baseline in (("a", {"metric": "valid/accuracy", "accuracy": 0.7, "class": "cat"}), ("b", "junk")):
        store.create("wf", model, baseline=baseline, monitor="valid/accuracy")
    page = build_page([open_run(p) for p in sorted((workspace / "runs").iterdir()) if p.is_dir()])
    assert sorted((r["label"], r["baseline"]) for r in page["runs"]) == [
        ("a", {"metric": "valid/accuracy", "accuracy": 0.7, "class": "cat"}), ("b", None)]
