"""Exact resume: a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends identical to an
uninterrupted one; damaged checkpoints are refused and resume falls back to the newest good one."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from kernel.store import Run, RunStore
from kernel.training import checkpoint as ckpt

HELPERS = '''
import os, time

class Slow:
    """Slows each epoch (or each batch) down so that a test can kill the run in the middle."""
    def __init__(self, epoch_seconds: float = 0.0, batch_seconds: float = 0.0):
        self.epoch_seconds, self.batch_seconds = epoch_seconds, batch_seconds
    def on_epoch_end(self, run, state):
        time.sleep(self.epoch_seconds)
    def on_batch_end(self, run, state):
        time.sleep(self.batch_seconds)

class StopAt:
    """Interrupts the run at one epoch unless NO_STOP is set (the resumed run must go on)."""
    def __init__(self, epoch: int = 2):
        self.epoch = epoch
    def on_epoch_end(self, run, state):
        if state.epoch == self.epoch and not os.environ.get("NO_STOP"):
            run.request_stop("stopped by the test", status="interrupted")
'''

WORKFLOW = """
name = "resume"
seed = 3
callbacks = [{CALLBACKS}]

[dataset]
use = "kernel.synthetic"
num_samples = 480
shape = [8]
noise = 3.0

[[models]]
use = "kernel.mlp"
params = {{ dropout = 0.2, hidden = 32 }}

[trainer]
epochs = {EPOCHS}
batch_size = 32
scheduler = {{ use = "torch.optim.lr_scheduler.OneCycleLR" }}
"""


@pytest.fixture
def helpers(helper_module, monkeypatch):
    # the runs name the helpers' callbacks by import path: resuming them from run.json needs the
    # user's leave, which helper_module gives
    folder = helper_module("resume_helpers", HELPERS)
    # the tests compare the final weights (last.pt) of completed runs: keep them
    monkeypatch.setenv("KERNEL_KEEP_CHECKPOINTS", "1")
    return folder


def write(write_workflow, callbacks="", epochs=5, name="workflow.toml"):
    return write_workflow(WORKFLOW.format(CALLBACKS=callbacks, EPOCHS=epochs), name)


def curves(run: Run) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("time", "elapsed_s")} for row in run.metrics()]


def assert_identical(a: Run, b: Run):
    assert curves(a) == curves(b)
    wa, wb = ckpt.load(a.checkpoints / "last.pt"), ckpt.load(b.checkpoints / "last.pt")
    assert wa["model"].keys() == wb["model"].keys()
    for key in wa["model"]:
        assert torch.equal(wa["model"][key], wb["model"][key]), key
    assert a.info["best"] == b.info["best"] and a.info["final"] == b.info["final"]


def new_run(store: RunStore, known: set) -> Run:
    fresh = [p for p in store.root.iterdir() if p.is_dir() and p.name not in known]
    assert len(fresh) == 1, fresh
    return Run.open(fresh[0], store)


def kill_when(proc, store: RunStore, known: set, lines: int, sig, delay: float = 0.0) -> Run:
    deadline = time.time() + 300
    while time.time() < deadline:
        runs = [p for p in store.root.glob("*/metrics.jsonl") if p.parent.name not in known]
        if runs and len(runs[0].read_text().splitlines()) >= lines:
            time.sleep(delay)
            proc.send_signal(sig)
            proc.wait(timeout=120)
            return new_run(store, known)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never reached the epoch to kill it at")


@pytest.mark.slow
def test_sigkill_then_resume_ends_identical_to_an_uninterrupted_run(cli, workspace, write_workflow, helpers):
    wf = write(write_workflow, '{ use = "resume_helpers:Slow", epoch_seconds = 0.4 }')
    store = RunStore(workspace)
    done = cli("run", wf, "--quiet")
    assert done.returncode == 0, done.stderr
    reference = new_run(store, set())
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(wf), "--quiet"], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = kill_when(proc, store, {reference.id}, 2, signal.SIGKILL)
    assert killed.status == "interrupted"  # its process is gone: `kernel runs` says so
    assert killed.info["epochs_done"] < 5
    listing = cli("runs", "--status", "interrupted", "--json")
    assert killed.id in listing.stdout
    resumed = cli("resume", killed.id, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_identical(reference, Run.open(killed.dir, store))
    assert Run.open(killed.dir, store).status == "completed"


@pytest.mark.slow
def test_sigterm_in_the_middle_of_an_epoch_writes_last_pt_and_resumes_exactly(cli, workspace, write_workflow,
                                                                              helpers):
    wf = write(write_workflow, '{ use = "resume_helpers:Slow", batch_seconds = 0.03 }', epochs=3)
    store = RunStore(workspace)
    assert cli("run", wf, "--quiet").returncode == 0
    reference = new_run(store, set())
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(wf), "--quiet"], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stopped = kill_when(proc, store, {reference.id}, 1, signal.SIGTERM, delay=0.15)
    assert stopped.info["status"] == "interrupted" and "SIGTERM" in stopped.info["reason"]
    saved = ckpt.load(stopped.checkpoints / "last.pt")
    assert saved["epoch"] == stopped.info["epochs_done"]
    resumed = cli("resume", stopped.id[:-2], "--quiet")  # a unique prefix names the run too
    assert resumed.returncode == 0, resumed.stderr
    assert_identical(reference, Run.open(stopped.dir, store))


def test_damaged_checkpoints_are_refused_and_resume_falls_back(workspace, write_workflow, helpers, monkeypatch):
    from kernel.runner import resume, run_workflow
    from kernel.workflow import Workflow

    wf = Workflow.from_file(write(write_workflow, epochs=4))
    reference = run_workflow(wf, quiet=True)[0]
    stopped = run_workflow(Workflow.from_file(write(write_workflow, '{ use = "resume_helpers:StopAt", epoch = 3 }',
                                                    epochs=4, name="stop.toml")), quiet=True)[0]
    assert stopped.status == "interrupted" and stopped.info["epochs_done"] == 3
    last = stopped.checkpoints / "last.pt"
    good = last.read_bytes()
    (stopped.checkpoints / "best.pt").write_bytes(b"")  # the best one is damaged too
    last.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ckpt.CheckpointError, match="damaged or truncated"):
        ckpt.load(last)
    # one flipped byte inside the weights: torch reads it, the checksum does not match
    flipped = bytearray(good)
    flipped[-4000] ^= 0xFF
    last.write_bytes(bytes(flipped))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(last)
    state, path, problems = ckpt.load_newest(stopped.checkpoints)
    assert path.name == "previous.pt" and state["epoch"] == 2 and problems
    monkeypatch.setenv("NO_STOP", "1")
    result = resume(stopped.id, quiet=True)
    assert result.status == "completed"
    assert_identical(reference, Run.open(stopped.dir))


def test_resume_refuses_missing_and_complete_runs(cli, workspace, write_workflow, helpers):
    from kernel.runner import run_workflow
    from kernel.workflow import Workflow

    missing = cli("resume", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr
    run = run_workflow(Workflow.from_file(write(write_workflow, epochs=1)), quiet=True)[0]
    done = cli("resume", run.id)
    assert done.returncode == 2 and "already complete" in done.stderr
    assert "Traceback" not in done.stderr


def _checksum_as_first_written(obj) -> str:
    """The checksum as checkpoint format 1 defined it: what every checkpoint written so far holds."""
    import hashlib

    h = hashlib.sha256()

    def feed(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            h.update(b"{")
            for k, v in o.items():
                h.update(repr(k).encode())
                feed(v)
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[" if isinstance(o, list) else b"(")
            for v in o:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(o).encode())

    feed(obj)
    return h.hexdigest()


def test_checkpoints_written_before_still_verify_and_a_failed_save_leaves_nothing(tmp_path):
    from kernel.seeding import rng_states

    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 5)).sum().backward()
    optimizer.step()
    state = {"epoch": 2, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_states(),
             "best": {"valid/loss": 0.5}, "partial": None, "mixed": [1, 2.5, "a", None, True, (3, [4])],
             "empty": torch.empty(0), "half": torch.ones(3, dtype=torch.bfloat16), "flags": torch.tensor([True])}
    assert ckpt.digest(state) == _checksum_as_first_written(state)
    ckpt.save(tmp_path / "last.pt", state)
    assert ckpt.load(tmp_path / "last.pt")["epoch"] == 2

    with pytest.raises(Exception):
        ckpt.save(tmp_path / "bad.pt", {"fn": lambda: None})  # a lambda cannot be pickled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
