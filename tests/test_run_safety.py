"""A run folder is data and a run has one writer: run files that name code run nothing, two resumes
at once are refused, runs killed early or stopped mid-way can go on, damaged store files are named
and skipped, a full disk fails the run, Ctrl-C stops the whole workflow, and a completed run keeps
only the checkpoint kernel.load needs."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import kernel
from kernel.errors import KernelError
from kernel.runlock import is_locked
from kernel.store import Run, RunStore, read_jsonl
from kernel.training import checkpoint as ckpt
from kernel.workflow import Workflow

HELPERS = '''
import glob, json, os, signal, time
from torch import nn


class Slow:
    """Sleeps at each epoch's end, before its checkpoint is written, while SLOW_SECONDS is set."""
    def on_epoch_end(self, run, state):
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))


class WaitWhile:
    """Holds each epoch's end while the file GATE names exists (when GATE is set)."""
    def on_epoch_end(self, run, state):
        gate, deadline = os.environ.get("GATE"), time.time() + 120
        while gate and os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)


class StopAt:
    """Interrupts the run at one epoch unless NO_STOP is set (the resumed run must go on)."""
    def __init__(self, epoch: int = 2):
        self.epoch = epoch
    def on_epoch_end(self, run, state):
        if state.epoch == self.epoch and not os.environ.get("NO_STOP"):
            run.request_stop("stopped by the test", status="interrupted")


class TermWhenComplete:
    """An analyzer that sends SIGTERM to its own process once a run has finished training, i.e.
    while the artifacts are written (unless NO_TERM is set)."""
    def start(self, info):
        pass
    def update(self, batch):
        pass
    def finish(self):
        from kernel import Report
        runs = glob.glob(os.path.join(os.environ["KERNEL_HOME"], "runs", "*", "run.json"))
        if not os.environ.get("NO_TERM") and any(json.load(open(p))["status"] == "completed" for p in runs):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        return Report(title="term")


class NoneTrainer:
    """A third-party trainer that breaks the contract: fit returns nothing."""
    def fit(self, model, data, run):
        return None


class TinyNet(nn.Module):
    def __init__(self, input_shape=(8,), num_classes=4):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)
    def forward(self, x):
        return self.fc(x)
'''

WORKFLOW = """
name = "safety"
seed = 1
callbacks = [{callbacks}]
{extra}

[dataset]
use = "kernel.synthetic"
num_samples = 160
shape = [8]

{models}

[trainer]
epochs = {epochs}
batch_size = 32
tensorboard = false
"""


@pytest.fixture
def helpers(helper_module):
    return helper_module("safety_helpers", HELPERS)


def workflow_file(write_workflow, callbacks="", epochs=3, models=("kernel.mlp",), extra="", name="wf.toml"):
    text = WORKFLOW.format(callbacks=callbacks, epochs=epochs, extra=extra,
                           models="\n".join(f'[[models]]\nuse = "{m}"\n' for m in models))
    return write_workflow(text, name)


def train(write_workflow, **options):
    from kernel.runner import run_workflow

    keep = {"keep_checkpoints": options.pop("keep_checkpoints")} if "keep_checkpoints" in options else {}
    return run_workflow(Workflow.from_file(workflow_file(write_workflow, **options)), quiet=True, **keep)


def interrupted_run(write_workflow, epochs=3, at=2) -> Run:
    run = train(write_workflow, callbacks=f'{{ use = "safety_helpers:StopAt", epoch = {at} }}', epochs=epochs)[0]
    assert run.status == "interrupted" and run.info["epochs_done"] == at
    return run


def edit_run_json(run_dir, change):
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def wait_for(condition, what: str, proc=None, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metrics_lines(store: RunStore) -> int:
    return sum(len(p.read_text().splitlines()) for p in store.root.glob("*/metrics.jsonl"))


# -- 1. a run file must not run code ----------------------------------------------------------------
def test_kernel_load_of_a_run_file_naming_code_runs_nothing(workspace, write_workflow, helpers, tmp_path,
                                                            monkeypatch):
    run = train(write_workflow, epochs=1)[0]
    marker = tmp_path / "marker"
    planted = tmp_path / "received" / "runs" / run.id
    shutil.copytree(run.dir, planted)  # a run folder someone handed over

    def plant(info):
        info["use"] = "subprocess:check_call"
        info["params"] = {"args": ["touch", str(marker)]}
        info["spec"]["models"][0] = {"use": "subprocess:check_call"}

    edit_run_json(planted, plant)
    with pytest.raises(KernelError) as err:
        kernel.load(planted)
    message = str(err.value)
    assert "'subprocess:check_call'" in message and "allow_imports=['subprocess']" in message
    assert "KERNEL_ALLOW_IMPORTS=subprocess" in message and "\n" not in message
    assert not marker.exists()

    # the dataset of the spec, built by samples(): refused at load, before anything is imported
    edit_run_json(planted, lambda info: info.update(use=run.info["use"], params=run.info["params"]))
    edit_run_json(planted, lambda info: info["spec"].update(
        dataset={"use": "os:system", "params": {"command": f"touch {marker}"}}))
    with pytest.raises(KernelError, match="'os:system'"):
        kernel.load(planted).samples()
    assert not marker.exists()

    # an allowed prefix does not let an attribute walk leave it
    edit_run_json(planted, lambda info: info["spec"].update(dataset=run.info["spec"]["dataset"]))
    edit_run_json(planted, lambda info: info.update(use="torch.optim.adamw:torch.hub.load"))
    with pytest.raises(KernelError, match="torch.hub.load"):
        kernel.load(planted, allow_imports=["torch.optim.adamw"])
    edit_run_json(planted, lambda info: info.update(use="safety_helpers:os.system"))
    with pytest.raises(KernelError, match="safety_helpers:os.system"):
        kernel.load(planted)  # safety_helpers is allowed (KERNEL_ALLOW_IMPORTS), os is not
    assert not marker.exists()


def test_imports_the_user_allows_load_and_the_default_allows_optimizers(workspace, write_workflow, helpers,
                                                                         monkeypatch):
    from kernel.allowed_imports import AllowedImports

    run = train(write_workflow, epochs=1, models=("safety_helpers:TinyNet",))[0]
    assert run.status == "completed"
    monkeypatch.delenv("KERNEL_ALLOW_IMPORTS")
    with pytest.raises(KernelError, match="safety_helpers:TinyNet"):
        kernel.load(run.id)
    assert kernel.load(run.id, allow_imports=["safety_helpers"]).predict is not None
    monkeypatch.setenv("KERNEL_ALLOW_IMPORTS", "other,safety_helpers")
    assert type(kernel.load(run.id).model).__name__ == "TinyNet"

    default = AllowedImports()
    import torch

    assert default.resolve("torch.optim.AdamW") is torch.optim.AdamW
    assert default.resolve("torch.optim.lr_scheduler:StepLR") is torch.optim.lr_scheduler.StepLR
    assert default.resolve("torch.nn.CrossEntropyLoss") is torch.nn.CrossEntropyLoss
    for path in ("torch.optim.adamw:torch.hub.load", "torch.optim.Optimizer.zero_grad", "torch.optim:adamw",
                 "torch.optimizers.X", "os:system", "torch.optim.lr_scheduler.math", "torch.nn.Linear",
                 "torch.nn.init"):
        with pytest.raises(KernelError):
            default.resolve(path)


def test_a_components_own_import_parameter_is_checked_while_a_run_file_is_rebuilt():
    """A plugin parameter that names a function (vision.Lambda's lambd) goes through
    kernel.resolve_target, which obeys the allowance in force: a run file cannot name code there."""
    import subprocess as sp

    import torch

    from kernel import resolve_target
    from kernel.allowed_imports import AllowedImports, enforcing

    with enforcing(AllowedImports()):
        with pytest.raises(KernelError, match="subprocess:getoutput"):
            resolve_target("subprocess:getoutput", "lambd")
        assert resolve_target("torch.optim.AdamW", "optimizer") is torch.optim.AdamW
    assert resolve_target("subprocess:getoutput") is sp.getoutput  # the user's own workflow: free


def test_a_path_allowed_exactly_resolves_to_a_class_defined_elsewhere():
    """The user allowed exactly this path (the --parallel worker is allowed its workflow's exact
    paths), so an object re-exported from another module is still the one they trust."""
    import posixpath

    from kernel.allowed_imports import AllowedImports

    assert AllowedImports(["os.path:join"]).resolve("os.path:join") is posixpath.join
    with pytest.raises(KernelError, match="defined in 'posixpath'.*--allow-import os.path:join"):
        AllowedImports(["os.path"]).resolve("os.path:join")


def test_kernel_resume_and_the_worker_of_a_run_file_naming_code_run_nothing(cli, workspace, write_workflow,
                                                                            helpers, tmp_path):
    run = interrupted_run(write_workflow)
    marker = tmp_path / "marker"
    edit_run_json(run.dir, lambda info: info["spec"].update(
        dataset={"use": "os:system", "params": {"command": f"touch {marker}"}}))
    out = cli("resume", run.id)
    assert out.returncode == 2, out.stderr
    assert "'os:system'" in out.stderr and f"kernel resume {run.id} --allow-import os" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    worker = subprocess.run([sys.executable, "-m", "kernel.runner", str(run.dir), "--allow-import", "safety_helpers"],
                            capture_output=True, text=True, cwd=workspace, timeout=300)
    assert worker.returncode == 2 and "'os:system'" in worker.stderr
    assert not marker.exists()
    # an optimizer named by a path that walks out of torch.optim is refused too (the trainer resolves it itself)
    edit_run_json(run.dir, lambda info: info["spec"].update(dataset={"use": "kernel.synthetic"}))
    edit_run_json(run.dir, lambda info: info["spec"]["trainer"].setdefault("params", {}).update(
        optimizer={"use": "torch.optim.adamw:torch.hub.load"}))
    out = cli("resume", run.id)
    assert out.returncode == 2 and "torch.optim.adamw:torch.hub.load" in out.stderr


def test_a_planted_lock_link_is_neither_locked_nor_written(tmp_path):
    """A received run folder whose .lock links to a file of the user's: taking the lock refuses, in
    one line, and the file it points to is untouched."""
    from kernel.runlock import RunLock

    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(victim)
    with pytest.raises(KernelError, match="a link"):
        RunLock(run_dir).acquire()
    assert victim.read_text() == "precious"
    (run_dir / ".lock").unlink()
    os.link(victim, run_dir / ".lock")  # a hard link: one file with two names
    with pytest.raises(KernelError, match="not a plain file"):
        RunLock(run_dir).acquire()
    assert victim.read_text() == "precious"


def test_resume_writes_nothing_through_links_planted_in_a_run_folder(cli, workspace, write_workflow, helpers,
                                                                     tmp_path):
    """A received run whose metrics.jsonl links to a file of the user's: resuming it would append
    epochs to that file. It is refused in one line, and the file is untouched."""
    run = interrupted_run(write_workflow)
    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    (run.dir / "metrics.jsonl").rename(tmp_path / "metrics.jsonl")
    (run.dir / "metrics.jsonl").symlink_to(victim)
    out = cli("resume", run.id)
    assert out.returncode == 2 and "is a link" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert victim.read_text() == "precious"


# -- 2. one writer per run ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_resume_at_once_is_refused_and_writes_nothing(cli, workspace, write_workflow, helpers):
    # Slow holds each epoch of the resumed run (SLOW_SECONDS is set only for the resumes), so the
    # first resume is surely seen training
    run = train(write_workflow, epochs=4,
                callbacks='{ use = "safety_helpers:StopAt", epoch = 1 }, { use = "safety_helpers:Slow" }')[0]
    assert run.status == "interrupted" and run.info["epochs_done"] == 1
    store = RunStore(workspace)
    env = {**os.environ, "KERNEL_HOME": str(workspace), "NO_STOP": "1", "SLOW_SECONDS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "kernel.cli", "resume", run.id, "--quiet"], cwd=workspace,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: is_locked(run.dir) and Run.open(run.dir).info["status"] == "running", "the first resume",
             first)
    before = (run.dir / "metrics.jsonl").read_text()
    second = cli("resume", run.id)
    assert second.returncode == 2
    assert f"is being trained by process {first.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert (run.dir / "metrics.jsonl").read_text().startswith(before)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert [row["epoch"] for row in Run.open(run.dir, store).metrics()] == [1, 2, 3, 4]


# -- 4. killed before the first checkpoint ------------------------------------------------------------
@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_is_trained_again(cli, workspace, write_workflow, helpers):
    wf = workflow_file(write_workflow, callbacks='{ use = "safety_helpers:Slow" }', epochs=2)
    store = RunStore(workspace)
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(wf), "--quiet"], cwd=workspace,
                            env={**os.environ, "KERNEL_HOME": str(workspace), "SLOW_SECONDS": "60"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: metrics_lines(store) >= 1, "the first epoch's metrics", proc)
    proc.kill()  # SIGKILL while the first epoch's checkpoint is not written yet
    proc.communicate(timeout=60)
    (run_dir,) = [p.parent for p in store.root.glob("*/run.json")]
    run = Run.open(run_dir, store)
    assert run.status == "interrupted" and not any(run.checkpoints.glob("*.pt"))
    run.checkpoints.mkdir(exist_ok=True)
    leftovers = [run.dir / ".run.json.12345.tmp", run.checkpoints / ".last.pt.12345.tmp"]
    for tmp in leftovers:
        tmp.write_bytes(b"half a file")
    out = cli("resume", run.id, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "training it again from its first epoch" in out.stderr
    # the two planted files are named among those removed (the killed writer may have left one more of its own)
    removed = re.search(r"removed (\d+) temporary file\(s\) a stopped writer left \(([^)]*)\)", out.stderr)
    assert removed and int(removed.group(1)) >= 2, out.stderr
    assert {".run.json.12345.tmp", ".last.pt.12345.tmp"} <= set(removed.group(2).split(", ")), out.stderr
    assert not any(tmp.exists() for tmp in leftovers)
    run = Run.open(run.dir, store)
    assert run.status == "completed" and [row["epoch"] for row in run.metrics()] == [1, 2]


# -- 5. damaged store files ----------------------------------------------------------------------------
def test_damaged_run_json_files_are_named_and_skipped(cli, workspace, capsys):
    store = RunStore(workspace)
    good = store.create("wf", "good")
    good.set_status("completed")
    damaged = {"list": ("[]", "a JSON list, not an object"), "number": ("42", "a JSON int, not an object"),
               "cut": ('{"id": "x", "sta', "truncated or not JSON"), "best": ('{"id": "b", "best": 5}', "'best' is a int")}
    for name, (text, _) in damaged.items():
        (store.root / f"wf-{name}").mkdir()
        (store.root / f"wf-{name}" / "run.json").write_text(text)
    out = cli("runs", "--reindex", "--json")
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)] == [good.id]
    for name, (_, problem) in damaged.items():
        assert f"wf-{name}/run.json is damaged: {problem}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    listing = cli("runs")
    assert listing.returncode == 0 and "wf-list/run.json is damaged" in listing.stderr
    resumed = cli("resume", "wf-number")
    assert resumed.returncode == 2 and "wf-number/run.json is damaged: a JSON int" in resumed.stderr
    with pytest.raises(KernelError, match="wf-cut/run.json is damaged: truncated"):
        store.get("wf-cut")
    with pytest.raises(KernelError, match="wf-list/run.json is damaged"):
        kernel.load("wf-list")
    assert [r["id"] for r in store.list()] == [good.id]
    assert "wf-best/run.json is damaged" in capsys.readouterr().err


def test_a_damaged_metrics_line_is_reported_and_never_dropped_silently(workspace, write_workflow, helpers,
                                                                       capsys, monkeypatch):
    from kernel.runner import resume

    run = interrupted_run(write_workflow)
    path = run.dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("42\n" + lines[1] + "\n")
    assert [row["epoch"] for row in read_jsonl(path)] == [2]
    assert f"{path} line 1 is damaged (a int, not a JSON object); skipped" in capsys.readouterr().err
    with pytest.raises(KernelError, match=r"metrics.jsonl line 1 is damaged .*--force"):
        resume(run.id, quiet=True)
    assert path.read_text().startswith("42\n")  # nothing was rewritten
    monkeypatch.setenv("NO_STOP", "1")
    assert resume(run.id, quiet=True, force=True).status == "completed"
    assert "line 1 is damaged" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_while_artifacts_are_written_leaves_a_run_that_resume_finishes(cli, workspace, write_workflow,
                                                                               helpers):
    wf = workflow_file(write_workflow, epochs=1, extra='analyzers = [{ use = "safety_helpers:TermWhenComplete" }]')
    out = cli("run", wf, "--quiet")
    assert out.returncode == 130, out.stderr
    store = RunStore(workspace)
    (info,) = store.list()
    assert info["status"] == "interrupted"  # trained, but its artifacts were cut off: not "completed"
    assert f"kernel resume {info['id']}" in out.stderr
    run = Run.open(store.root / info["id"], store)
    assert run.info["artifacts"] == "pending"
    resumed = cli("resume", run.id, env={"NO_TERM": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert "writing them again" in resumed.stderr
    run = Run.open(run.dir, store)
    assert run.status == "completed" and run.info["artifacts"] == "written"
    assert (run.artifacts / "reports" / "safety_helpers:TermWhenComplete.json").exists()


def test_a_full_disk_is_reported_even_when_quiet_and_fails_the_run(workspace, write_workflow, helpers, capsys,
                                                                   monkeypatch):
    from kernel.cli import main

    def no_space(self, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Run, "log", no_space)
    code = main(["run", str(workflow_file(write_workflow, epochs=1)), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "the disk is full" in err
    (info,) = RunStore(workspace).list()
    assert info["status"] == "failed" and "No space left on device" in info["reason"]


# -- resume: changed data, where it resumed from ------------------------------------------------------
def test_resume_refuses_changed_data_unless_forced_and_says_where_it_resumes(cli, workspace, write_workflow,
                                                                              helpers):
    run = interrupted_run(write_workflow)
    edit_run_json(run.dir, lambda info: info.update(fingerprint="0123456789ab"))
    out = cli("resume", run.id, env={"NO_STOP": "1"})
    assert out.returncode == 2 and "changed since it started" in out.stderr and "--force" in out.stderr
    assert len(Run.open(run.dir).metrics()) == 2
    out = cli("resume", run.id, "--force", "--quiet", env={"NO_STOP": "1"})
    assert out.returncode == 0, out.stderr
    assert "resuming from checkpoints/last.pt (2 epoch(s) done)" in out.stderr


# -- Ctrl-C stops the whole workflow -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
def test_ctrl_c_stops_every_model_and_names_the_runs_to_resume(workspace, write_workflow, helpers, parallel):
    wf = workflow_file(write_workflow, callbacks='{ use = "safety_helpers:Slow" }', epochs=4,
                       models=("kernel.mlp", "kernel.linear"))
    store = RunStore(workspace)
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(wf), "--quiet", "--parallel",
                             str(parallel)], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KERNEL_HOME": str(workspace), "SLOW_SECONDS": "1"})
    wait_for(lambda: metrics_lines(store) >= parallel, "the first epochs", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    runs = sorted(store.list(), key=lambda i: i["model_index"])
    if parallel == 1:
        assert [r["status"] for r in runs] == ["interrupted", "queued"]  # the second model never started
    else:
        assert [r["status"] for r in runs] == ["interrupted", "interrupted"]
    assert all(r["epochs_done"] < 4 for r in runs)
    for r in runs:
        assert f"kernel resume {r['id']}" in err


@pytest.mark.slow
def test_a_run_another_process_trained_meanwhile_is_left_as_it_is(cli, workspace, write_workflow, helpers,
                                                                  tmp_path):
    """`kernel resume` of a queued run while `kernel run` still trains the first model: when the
    loop reaches that run, it is complete, and it is not trained a second time."""
    gate = tmp_path / "gate"
    gate.touch()
    wf = workflow_file(write_workflow, callbacks='{ use = "safety_helpers:WaitWhile" }', epochs=2,
                       models=("kernel.mlp", "kernel.linear"))
    store = RunStore(workspace)
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(wf), "--quiet"], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KERNEL_HOME": str(workspace), "GATE": str(gate)})
    try:
        wait_for(lambda: metrics_lines(store) >= 1, "the first model's first epoch", proc)
        second = next(i for i in store.list() if i["model_index"] == 1)
        assert second["status"] == "queued"
        resumed = cli("resume", second["id"], "--quiet")  # no GATE here: it trains straight through
        assert resumed.returncode == 0, resumed.stderr
    finally:
        gate.unlink()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"skipped: run {second['id']} is completed now" in err
    run = store.get(second["id"])
    assert run.status == "completed"
    assert [r["epoch"] for r in run.metrics()] == [1, 2]  # trained once, not twice


# -- the trainer contract ------------------------------------------------------------------------------
def test_a_trainer_whose_fit_returns_none_fails_the_run(workspace, write_workflow, helpers, capsys):
    wf = Workflow.from_file(workflow_file(write_workflow, epochs=1)).with_overrides(
        {"trainer": {"use": "safety_helpers:NoneTrainer"}})
    from kernel.runner import run_workflow

    (run,) = run_workflow(wf, quiet=True)
    assert run.status == "failed"
    assert "fit returned NoneType, not a kernel Result" in run.info["reason"]
    assert "returned NoneType" in capsys.readouterr().err


# -- checkpoints of a completed run -------------------------------------------------------------------
def test_a_completed_run_keeps_only_the_weights_kernel_load_needs(cli, workspace, write_workflow, helpers,
                                                                  capsys):
    run = train(write_workflow, epochs=2)[0]
    assert run.status == "completed"
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.pt"]
    state = ckpt.load(run.checkpoints / "best.pt")
    assert "model" in state and "optimizer" not in state and "rng" not in state
    loaded = kernel.load(run.id)
    assert loaded.checkpoint == "best.pt" and loaded.predict([x for x, _ in loaded.samples(count=2)]).shape == (2, 4)
    done = cli("resume", run.id)
    assert done.returncode == 2 and "already complete" in done.stderr
    kept = train(write_workflow, epochs=2, keep_checkpoints=True, name="kept.toml")[0]
    assert {"last.pt", "previous.pt", "best.pt"} == {p.name for p in kept.checkpoints.iterdir()}
    assert "optimizer" in ckpt.load(kept.checkpoints / "last.pt")
    # a damaged checkpoint is a warning on stderr, never on stdout
    capsys.readouterr()
    (kept.checkpoints / "best.pt").write_bytes(b"")
    assert kernel.load(kept.id).checkpoint == "last.pt"
    captured = capsys.readouterr()
    assert "trying the next checkpoint" in captured.err and captured.out == ""


def test_restart_trains_a_run_again_and_all_damaged_checkpoints_point_to_it(workspace, write_workflow, helpers,
                                                                            capsys, monkeypatch):
    from kernel.runner import resume

    run = interrupted_run(write_workflow)
    for path in run.checkpoints.glob("*.pt"):
        path.write_bytes(b"damaged")
    with pytest.raises(KernelError, match=f"kernel resume {run.id} --restart"):
        resume(run.id, quiet=True)
    monkeypatch.setenv("NO_STOP", "1")
    assert resume(run.id, quiet=True, restart=True).status == "completed"
    assert "training it again from its first epoch (--restart)" in capsys.readouterr().err
    assert [row["epoch"] for row in Run.open(run.dir).metrics()] == [1, 2, 3]
