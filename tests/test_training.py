"""kernel.supervised: automatic defaults, the loop's settings, callbacks and events, failures that
stay in their run, bad settings named in one line, kernel.load, and the kernel-only example."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kernel.errors import KernelError
from kernel.runner import run_workflow
from kernel.store import Run, RunStore
from kernel.training.events import EventBus
from kernel.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]

HELPERS = '''
import torch
from torch import nn

class BreaksInTraining(nn.Module):
    """Fine on one batch in eval mode; raises at the third training step."""
    def __init__(self, input_shape=(8,), num_classes=4):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)
        self.calls = 0
    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("the model broke")
        return self.fc(x)

class Prune:
    """What a tuner does: read the monitored metric each epoch and ask the trainer to stop."""
    def on_epoch_end(self, run, state):
        if state.epoch == 2:
            run.request_stop("pruned at epoch 2")

class ChangesProcessSettings:
    """A callback that changes process-wide settings a fit must put back (the thread count, grad mode)."""
    def on_epoch_end(self, run, state):
        torch.set_num_threads(1)
    def on_fit_end(self, run, state):
        torch.set_grad_enabled(False)

from kernel.training.supervised import Supervised

class ReturnsNothing(Supervised):
    """A trainer whose step returns no loss."""
    def train_step(self, batch, state):
        return None
'''


@pytest.fixture
def helpers(helper_module):
    return helper_module("train_helpers", HELPERS)


def workflow(models=("kernel.mlp",), dataset=None, callbacks=(), trainer_use=None, **trainer) -> Workflow:
    trainer = {"epochs": 2, "batch_size": 32, "tensorboard": False, **trainer}
    if trainer_use:
        trainer["use"] = trainer_use
    dataset = dataset or {"use": "kernel.synthetic", "num_samples": 200, "shape": [8], "noise": 2.0}
    return Workflow(name="train", seed=1, dataset=dataset, models=[{"use": m} for m in models],
                    trainer=trainer, callbacks=list(callbacks))


# -- events -------------------------------------------------------------------------------------
class _State:
    def __init__(self):
        self.step = self.epoch = 0


def test_event_filters_every_and_once_and_list_order():
    calls = []

    class First:
        filters = {"batch_end": {"every": 3}}

        def on_batch_end(self, run, state):
            calls.append(("first", state.step))

        def on_epoch_end(self, run, state):
            calls.append(("first-epoch", state.epoch))

    class Second:
        filters = {"epoch_end": {"once": 2}}

        def on_epoch_end(self, run, state):
            calls.append(("second-epoch", state.epoch))

    bus = EventBus([First(), Second()])
    bus.on("batch_end", lambda run, state: calls.append(("fn", state.step)), once=4)
    state = _State()
    assert bus.period("batch_end") == 1 and bus.period("validation_end") == 0  # gcd of every 3 and once 4
    for epoch in (1, 2, 3):
        state.epoch = epoch
        for _ in range(3):
            state.step += 1
            bus.fire("batch_end", None, state)
        bus.fire("epoch_end", None, state)
    assert [c for c in calls if c[0] == "first"] == [("first", 3), ("first", 6), ("first", 9)]
    assert ("fn", 4) in calls and len([c for c in calls if c[0] == "fn"]) == 1
    epochs = [c for c in calls if "epoch" in c[0]]
    assert epochs[:3] == [("first-epoch", 1), ("first-epoch", 2), ("second-epoch", 2)]  # list order


# -- automatic defaults --------------------------------------------------------------------------
def test_describe_resolves_defaults_from_the_data():
    from kernel.build import prepare

    plan = prepare(workflow())
    cfg = plan.trainer().describe(plan.data)
    assert cfg["loss"] == "cross_entropy" and cfg["metrics"] == ["kernel.accuracy", "kernel.f1"]
    assert (cfg["monitor"], cfg["mode"], cfg["device"]) == ("valid/accuracy", "max", "cpu")
    reg = prepare(workflow(dataset={"use": "kernel.synthetic", "task": "regression", "num_samples": 100}))
    cfg = Workflow  # noqa: F841
    cfg = reg.trainer().describe(reg.data)
    assert cfg["loss"] == "mse" and cfg["metrics"] == ["kernel.mse", "kernel.mae"]
    assert (cfg["monitor"], cfg["mode"]) == ("valid/loss", "min")
    auto = prepare(workflow(batch_size="auto", dataset={"use": "kernel.synthetic", "num_samples": 40}))
    assert auto.trainer().describe(auto.data)["batch_size"] == 32  # 64, at most the training split


def test_regression_trains_with_the_automatic_loss(workspace):
    wf = workflow(dataset={"use": "kernel.synthetic", "task": "regression", "num_samples": 160, "shape": [4]},
                  epochs=3, optimizer={"use": "torch.optim.AdamW", "lr": 0.02})
    run = run_workflow(wf, quiet=True)[0]
    rows = run.metrics()
    assert run.status == "completed" and set(rows[0]) >= {"train/mse", "valid/mse", "valid/mae", "lr", "step"}
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


def test_loop_settings_bf16_accumulate_clip_and_schedulers(workspace):
    wf = workflow(models=("kernel.mlp", "kernel.linear"), epochs=3, precision="bf16", accumulate=2,
                  clip_grad_norm=1.0, scheduler={"use": "torch.optim.lr_scheduler.OneCycleLR"})
    results = run_workflow(wf, quiet=True)
    assert results.ok
    lrs = [row["lr"] for row in results[0].metrics()]
    assert len(set(lrs)) == 3  # OneCycleLR moved the rate every step
    plateau = workflow(epochs=3, scheduler={"use": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0,
                                            "factor": 0.5}, optimizer={"use": "torch.optim.SGD", "lr": 0.0})
    run = run_workflow(plateau, quiet=True)[0]
    assert run.status == "completed"


# -- the loop: process-wide settings, the replaceable step -------------------------------------
def _process_settings():
    return {"matmul_tf32": torch.backends.cuda.matmul.allow_tf32, "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision(),
            "deterministic": torch.are_deterministic_algorithms_enabled(), "threads": torch.get_num_threads(),
            "grad": torch.is_grad_enabled(), "cublas": __import__("os").environ.get("CUBLAS_WORKSPACE_CONFIG")}


def test_process_wide_settings_are_put_back_after_the_fit_even_when_it_fails(workspace, helpers, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = _process_settings()
    assert before["matmul_tf32"] is False and before["deterministic"] is False  # else the test proves nothing
    try:
        results = run_workflow(workflow(models=("train_helpers:BreaksInTraining", "kernel.linear"), epochs=1,
                                        precision="tf32", deterministic=True, checkpoint=False,
                                        callbacks=[{"use": "train_helpers:ChangesProcessSettings"}]), quiet=True)
        assert [r.status for r in results] == ["failed", "completed"]
        assert _process_settings() == before
    finally:  # whatever happened, the other tests of this process get the settings back
        torch.backends.cuda.matmul.allow_tf32 = before["matmul_tf32"]
        torch.backends.cudnn.allow_tf32 = before["cudnn_tf32"]
        torch.set_float32_matmul_precision(before["matmul_precision"])
        torch.use_deterministic_algorithms(before["deterministic"])
        torch.set_num_threads(before["threads"])
        torch.set_grad_enabled(before["grad"])


def _docs_file(name: str) -> str:
    import re

    text = (ROOT / "docs" / "training.md").read_text()
    blocks = dict(re.findall(r"^```python\n# file: (\S+)\n(.*?)^```", text, re.S | re.M))
    return blocks[name]


def test_the_documented_train_step_override_trains_with_the_rest_of_the_loop(workspace, helpers, tmp_path,
                                                                          monkeypatch):
    folder = tmp_path / "docs_example"
    folder.mkdir()
    (folder / "mixup_trainer.py").write_text(_docs_file("mixup_trainer.py"))
    monkeypatch.syspath_prepend(str(folder))
    seen = []

    import mixup_trainer

    step = mixup_trainer.MixUp.train_step
    monkeypatch.setattr(mixup_trainer.MixUp, "train_step",
                        lambda self, batch, state: seen.append(state.step) or step(self, batch, state))
    mixed = run_workflow(workflow(epochs=2, trainer_use="mixup_trainer:MixUp"), quiet=True)[0]
    plain = run_workflow(workflow(epochs=2), quiet=True)[0]
    assert mixed.status == "completed" and mixed.info["epochs_done"] == 2
    assert len(seen) == 2 * 5  # every batch of both epochs went through the override (160 samples / 32)
    rows = mixed.metrics()
    assert "train/accuracy" not in rows[0] and {"train/loss", "valid/loss", "valid/accuracy"} <= set(rows[0])
    assert rows[-1]["train/loss"] != plain.metrics()[-1]["train/loss"]
    assert (mixed.checkpoints / "best.pt").is_file()  # checkpoints, events and metrics are the loop's


def test_a_step_that_returns_no_loss_fails_its_run_with_a_clear_reason(workspace, helpers):
    run = run_workflow(workflow(epochs=1, trainer_use="train_helpers:ReturnsNothing"), quiet=True)[0]
    assert run.status == "failed"
    assert "train_step() must return the loss (a tensor) or (loss, outputs), not NoneType" in run.info["reason"]


def test_class_weights_written_as_a_list_train(workspace):
    """A workflow can only write lists; torch's losses take the class weights as a tensor."""
    wf = workflow(epochs=1, loss={"use": "torch.nn.CrossEntropyLoss", "weight": [1.0, 3.0, 1.0, 1.0]})
    run = run_workflow(wf, quiet=True)[0]
    assert run.status == "completed", run.info["reason"]

# -- callbacks -----------------------------------------------------------------------------------
def test_nan_loss_fails_the_run_with_the_reason(workspace):
    wf = workflow(dataset={"use": "kernel.synthetic", "task": "regression", "num_samples": 200},
                  optimizer={"use": "torch.optim.SGD", "lr": 1e12}, epochs=3)
    run = run_workflow(wf, quiet=True)[0]
    assert run.status == "failed" and "nan" in run.info["reason"].lower() or "inf" in run.info["reason"]


def test_early_stopping_and_a_pruning_callback_stop_the_run(workspace, helpers):
    run = run_workflow(workflow(epochs=6, optimizer={"use": "torch.optim.SGD", "lr": 0.0},
                                early_stopping={"patience": 1}), quiet=True)[0]
    assert run.status == "completed" and run.info["epochs_done"] == 2 and "early stopping" in run.info["reason"]
    pruned = run_workflow(workflow(epochs=5, callbacks=[{"use": "train_helpers:Prune"}]), quiet=True)[0]
    assert pruned.info["epochs_done"] == 2 and pruned.info["reason"] == "pruned at epoch 2"


def test_one_failing_model_leaves_the_others_to_finish(workspace, helpers, capsys):
    results = run_workflow(workflow(models=("train_helpers:BreaksInTraining", "kernel.linear")), quiet=True)
    broken, fine = results
    assert broken.status == "failed" and "the model broke" in broken.info["reason"]
    assert fine.status == "completed" and not results.ok
    assert results.best().id == fine.id


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, value, message", [
    ("trainer.loss", '"mse"', "trainer.loss: mse needs outputs shaped like the targets"),
    ("trainer.metrics", '["kernel.mse"]', "trainer.metrics[0]: kernel.mse measures regression"),
    ("trainer.batch_size", "5000", "trainer.batch_size = 5000 is larger than the training split"),
    ("trainer.optimizer", '{use = "torch.optim.AdamW", lrr = 0.1}', "trainer.optimizer.lrr: unknown parameter "
                                                                   "(did you mean 'lr'?)"),
    ("trainer.monitor", '"valid/acc"', "trainer.monitor: 'valid/acc' is not measured"),
    ("trainer.loss", '"crossentropy"', "unknown loss 'crossentropy' (did you mean 'cross_entropy'?)"),
    ("trainer.precision", '"fp8"', "trainer.precision must be one of"),
    ("trainer.epochs", "0", "trainer.epochs must be a whole number of at least 1, not 0"),  # as the user spells it
])
def test_bad_settings_are_one_line_errors_naming_the_setting(workspace, capsys, setting, value, message):
    from kernel.cli import main

    path = workspace / "wf.toml"
    path.write_text((ROOT / "examples" / "synthetic.toml").read_text())
    code = main(["run", str(path), "--quiet", "--set", f"{setting}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not list((workspace / "runs").glob("*/run.json"))  # nothing was started


# -- kernel.load ---------------------------------------------------------------------------------
def test_load_gives_the_model_its_transforms_and_samples(workspace):
    import kernel

    run = run_workflow(workflow(epochs=1), quiet=True)[0]
    loaded = kernel.load(run.id)
    assert loaded.checkpoint == "best.pt" and loaded.facts["num_classes"] == 4
    samples = loaded.samples("valid", count=3)
    assert len(samples) == 3
    inputs = [x for x, _ in samples]
    out = loaded.predict(inputs)
    assert out.shape == (3, 4)
    assert torch.equal(out, loaded.model(torch.stack(inputs)))
    with pytest.raises(KernelError, match="no run"):
        kernel.load("nope")


# -- the kernel-only example, end to end -----------------------------------------------------------
@pytest.mark.slow
def test_the_synthetic_example_trains_both_models_and_compares_them(cli, workspace):
    out = cli("run", ROOT / "examples" / "synthetic.toml", "--set", "trainer.epochs=2")
    assert out.returncode == 0, out.stderr
    assert "mlp epoch 2/2" in out.stderr and "linear epoch 1/2" in out.stderr  # plain lines off a terminal
    runs = RunStore(workspace).list()
    assert sorted(r["model"] for r in runs) == ["linear", "mlp"]
    for info in runs:
        run = Run.open(workspace / "runs" / info["id"])
        assert info["status"] == "completed" and len(run.metrics()) == 2
        # a completed run keeps only best.pt, slimmed to what kernel.load needs (--keep-checkpoints keeps all)
        assert [p.name for p in run.checkpoints.iterdir()] == ["best.pt"]
        assert list((run.dir / "tensorboard").glob("events.out.tfevents.*"))
        matrix = json.loads((run.artifacts / "confusion_matrix.json").read_text())
        assert len(matrix["matrix"]) == 4 and sum(map(sum, matrix["matrix"])) == 400
        assert (run.artifacts / "reports").is_dir()
        assert info["defaults"]["loss"] == "cross_entropy" and info["params"]["num_classes"] == 4
    compare = cli("compare")
    assert compare.returncode == 0 and "mlp" in compare.stdout and "linear" in compare.stdout


@pytest.mark.slow
def test_parallel_runs_each_model_in_its_own_process(workspace, helpers):
    results = run_workflow(workflow(models=("kernel.mlp", "train_helpers:BreaksInTraining")), parallel=2, quiet=True)
    assert [r.status for r in results] == ["completed", "failed"]
    assert "the model broke" in results[1].info["reason"]
    assert results[0].info["pid"] != __import__("os").getpid()
    sequential = run_workflow(workflow(), quiet=True)[0]
    assert results[0].metrics()[-1]["valid/loss"] == sequential.metrics()[-1]["valid/loss"]  # same seed, same run


def test_tensorboard_logs_samples_as_the_renderers_draw_them(workspace):
    """No kind of data is known to the kernel: 8-value vectors get their pictures from a renderer too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_workflow(workflow(epochs=1, tensorboard=True), quiet=True)[0]
    events = EventAccumulator(str(run.dir / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["images"]) == [f"samples/train/{i}" for i in range(4)]


def test_the_trainer_and_the_conformance_check_name_no_kind_of_data():
    """Domain words belong to plugins: the kernel's trainer, callbacks and check go by facts and tags."""
    import ast

    words = {"vision", "audio", "speech", "text", "nlp", "boxes", "spectrogram", "segmentation", "detection"}
    for path in [ROOT / "kernel" / "testing.py", *sorted((ROOT / "kernel" / "training").glob("*.py"))]:
        strings = {node.value.lower() for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not strings & words, f"{path.name} names {sorted(strings & words)}"


# -- events at the steps their filters allow, progress by time (issue 17) -------------------------------
def test_event_period_is_where_any_filter_can_let_a_call_through():
    class Every4:
        filters = {"batch_end": {"every": 4}}

        def on_batch_end(self, run, state):
            pass

    class Plain:
        def on_batch_end(self, run, state):
            pass

    from kernel.training.callbacks import Progress, StopOnNaN

    assert EventBus([]).period("batch_end") == 0
    assert EventBus([StopOnNaN(), Progress()]).period("batch_end") == 100  # progress costs no batch
    bus = EventBus([Every4()])
    bus.on("batch_end", lambda run, state: None, every=6)
    assert bus.period("batch_end") == 2
    bus.on("batch_end", lambda run, state: None, once=9)
    assert bus.period("batch_end") == 1
    assert EventBus([Every4(), Plain()]).period("batch_end") == 1


def test_the_loop_calls_filtered_batch_listeners_at_the_same_steps(tmp_path):
    from kernel.build import prepare
    from kernel.training.supervised import Supervised

    calls = []

    class Every4:
        filters = {"batch_end": {"every": 4}}

        def on_batch_end(self, run, state):
            calls.append(("every4", state.step))

    class Once7:
        filters = {"batch_end": {"once": 7}}

        def on_batch_end(self, run, state):
            calls.append(("once7", state.step))

    plan = prepare(workflow())  # 160 training samples: 5 batches of 32 an epoch
    model, _ = plan.model(0)
    run = RunStore(tmp_path).create("train", "mlp")
    run.callbacks, run.quiet = [Every4(), Once7()], True
    Supervised(epochs=3, batch_size=32, tensorboard=False, checkpoint=False).fit(model, plan.data, run)
    assert calls == [("every4", 4), ("once7", 7), ("every4", 8), ("every4", 12)]


def test_progress_lines_come_by_time_within_an_epoch(tmp_path, capsys):
    import time

    from kernel.build import prepare
    from kernel.training.callbacks import Progress
    from kernel.training.supervised import Supervised

    class SlowBatches:
        def on_batch_end(self, run, state):
            time.sleep(0.1)  # 0.5 s an epoch: the thread has many turns to write a line every 0.05 s

    plan = prepare(workflow())
    model, _ = plan.model(0)
    run = RunStore(tmp_path).create("train", "mlp")
    run.callbacks, run.quiet = [SlowBatches(), Progress(refresh=0.01, every=0.05)], False
    Supervised(epochs=2, batch_size=32, tensorboard=False, checkpoint=False, progress=False).fit(model, plan.data, run)
    lines = capsys.readouterr().err.splitlines()
    within = [line for line in lines if " batch " in line]
    assert within and all(line.split(" batch ")[1].split("/")[1].startswith("5 loss ") for line in within)
    assert all(1 <= int(line.split(" batch ")[1].split("/")[0]) <= 5 for line in within)
    assert sum(" epoch " in line and "train/loss" in line for line in lines) == 2
    assert lines[-1].endswith(": completed")


def test_the_progress_bar_is_drawn_by_its_thread_which_ends_with_the_fit(tmp_path, monkeypatch):
    import io
    import threading
    import time

    from kernel.build import prepare
    from kernel.training.callbacks import Progress
    from kernel.training.supervised import Supervised

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class SlowBatches:
        def on_batch_end(self, run, state):
            time.sleep(0.1)
            if state.step == fail_at:
                raise RuntimeError("a callback broke")

    monkeypatch.delenv("KERNEL_PROGRESS", raising=False)
    plan = prepare(workflow())
    for fail_at, epochs in ((None, 1), (3, 2)):
        terminal = Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        model, _ = plan.model(0)
        run = RunStore(tmp_path).create("train", "mlp")
        run.callbacks, run.quiet = [SlowBatches(), Progress(refresh=0.02)], False
        trainer = Supervised(epochs=epochs, batch_size=32, tensorboard=False, checkpoint=False, progress=False)
        if fail_at is None:
            trainer.fit(model, plan.data, run)
        else:
            with pytest.raises(RuntimeError, match="a callback broke"):
                trainer.fit(model, plan.data, run)
        drawn = terminal.getvalue()
        # the bar as the loop left it between batches: its epoch, batches done of 5 and the live loss
        assert f"mlp epoch 1/{epochs}" in drawn and "/5" in drawn and "loss " in drawn
        assert not [t for t in threading.enumerate() if t.name == "kernel-progress"]  # stopped, not leaked
    assert "mlp: completed" not in drawn  # the failed fit: no completion line
