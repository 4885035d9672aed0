"""What a plugin that runs workflows itself (a tuner) gets from ``Workflow.run``: its own callback
objects in each run, fields of its own in run.json, built data reused, and runs that skip the
artifacts only a person looks at until ``kernel resume`` writes them."""
from __future__ import annotations

import json

import pytest

import kernel
from kernel import Workflow

WORKFLOW = {"name": "plugged", "seed": 0, "dataset": {"use": "kernel.synthetic", "num_samples": 200},
            "models": [{"use": "kernel.mlp", "hidden": 8}],
            "trainer": {"epochs": 3, "batch_size": 32, "metrics": ["kernel.accuracy"]}}


class Stopper:
    """Records the epochs it sees and prunes the run after the second."""

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, run, state):
        self.epochs.append((state.epoch, round(state.metrics["valid/accuracy"], 6)))
        if state.epoch == 2:
            run.request_stop("not promising", status="pruned")


def test_callbacks_record_and_the_pruned_status(workspace):
    stopper = Stopper()
    results = Workflow(**WORKFLOW).run(quiet=True, callbacks=[stopper], record={"study": "s", "trial": 4})
    run = results.runs[0]
    info = json.loads((run.dir / "run.json").read_text())
    assert [e for e, _ in stopper.epochs] == [1, 2]
    assert (info["status"], info["reason"], info["epochs_done"]) == ("pruned", "not promising", 2)
    assert (info["study"], info["trial"]) == ("s", 4) and info["ended"]
    assert (run.dir / "checkpoints" / "last.pt").is_file()  # a pruned run keeps what it trained
    listed = kernel.RunStore().list(status="pruned")
    assert [i["id"] for i in listed] == [run.id]


def test_a_record_may_not_overwrite_the_kernels_fields(workspace):
    with pytest.raises(kernel.KernelError, match="record: status is the kernel's own run.json field"):
        Workflow(**WORKFLOW).run(quiet=True, record={"status": "completed"})
    with pytest.raises(kernel.KernelError, match="must be plain JSON values"):
        Workflow(**WORKFLOW).run(quiet=True, record={"when": object()})
    assert not (workspace / "runs").exists() or not list((workspace / "runs").glob("*/run.json"))


def test_data_is_reused_only_for_the_same_dataset_and_seed(workspace):
    wf = Workflow(**WORKFLOW)
    data = kernel.prepare(wf).data
    assert data.fits(wf) and data.fits(wf.with_overrides({"trainer.epochs": 1}))
    assert kernel.prepare(wf.with_overrides({"trainer.epochs": 1}), data=data).data is data
    assert not data.fits(wf.with_overrides({"seed": 1}))
    other = kernel.prepare(wf.with_overrides({"dataset.num_samples": 100}), data=data).data
    assert other is not data and len(other.train) < len(data.train)


def test_runs_may_skip_their_artifacts_until_resume_writes_them(workspace):
    run = Workflow(**WORKFLOW).run(quiet=True, artifacts=False).runs[0]
    info = json.loads((run.dir / "run.json").read_text())
    assert (info["status"], info["artifacts"]) == ("completed", "skipped")
    assert not (run.dir / "artifacts").exists()
    images = [p for p in (run.dir / "tensorboard").rglob("*") if "images" in p.name]
    assert images == []
    assert kernel.RunStore().get(run.id).status == "completed"  # skipped is not "stopped while writing"
    kernel.resume(run.id, quiet=True)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["artifacts"] == "written" and (run.dir / "artifacts" / "samples" / "samples.json").is_file()
    assert (run.dir / "artifacts" / "reports").is_dir()
    with pytest.raises(kernel.KernelError, match="already complete"):
        kernel.resume(run.id, quiet=True)
