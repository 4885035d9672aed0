"""Running a workflow: one run per model, one after another or in ``--parallel N`` processes.

A run is fully described by its ``run.json`` (the workflow and the model's index), so a worker
process, ``kernel resume`` and the sequential loop all train through :func:`execute`.
One model that fails is recorded as failed; the others still train.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

from .errors import KernelError
from .store import Run, RunStore


def run_workflow(workflow, parallel: int = 1, quiet: bool = False, workspace=None, overrides=None,
                 catalog=None) -> "Results":
    """Train every model of ``workflow``; returns :class:`Results` (one run each)."""
    from .build import prepare
    from .catalog import get_catalog
    from .data import majority_baseline
    from .seeding import seed_everything

    if overrides:
        workflow = workflow.with_overrides(overrides)
    if not isinstance(parallel, int) or parallel < 1:
        raise KernelError(f"--parallel must be 1 or more, not {parallel!r}")
    plan = prepare(workflow, catalog or get_catalog())
    trainer = plan.trainer()
    describe = getattr(trainer, "describe", None)
    defaults = describe(plan.data) if callable(describe) else {}
    for i in range(len(workflow.models)):  # a setting that cannot work is the user's to fix: before any run
        seed_everything(workflow.seed)
        model, _ = plan.model(i)
        if hasattr(trainer, "check"):
            try:
                trainer.check(model, plan.data, defaults)
            except KernelError:
                raise
            except Exception:
                pass  # the model itself breaks on this data: its run will fail and say why
        del model
    plan.callbacks()  # the workflow's callbacks must build
    store = RunStore(workspace)
    baseline = majority_baseline(plan.data)
    runs = [_create(store, plan, i, defaults, baseline) for i in range(len(workflow.models))]
    if parallel > 1 and len(runs) > 1:
        _run_parallel(runs, parallel, quiet, store)
    else:
        reports = None
        for run in runs:
            try:
                execute(run, plan, quiet=quiet, reports=reports)
                reports = reports or (run.artifacts / "reports")
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if not quiet:
                    print(f"kernel: run {run.id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return Results([Run.open(r.dir, store) for r in runs])


def _create(store: RunStore, plan, index: int, defaults: dict, baseline: dict | None = None) -> Run:
    import torch

    wf, data = plan.workflow, plan.data
    spec = wf.models[index]
    return store.create(
        wf.name, wf.model_label(index), model_index=index, use=spec.use, fingerprint=data.fingerprint,
        seed=wf.seed, tags=list(wf.tags), spec=wf.to_dict(), params=_plain(dict(spec.params)),
        defaults=defaults, param_count=None, epochs=defaults.get("epochs"), monitor=defaults.get("monitor"),
        mode=defaults.get("mode"), baseline=baseline, classes=data.classes, facts=_plain(data.facts), source=wf.source,
        versions={"python": platform.python_version(), "torch": torch.__version__, "kernel": _version()})


def execute(run: Run, plan, quiet: bool = False, resume: bool = False, reports=None):
    """Build the run's model, train it, and write its artifacts; returns the trainer's Result."""
    from .seeding import seed_everything

    index = run.info["model_index"]
    seed_everything(plan.workflow.seed)
    model, filled = plan.model(index)
    run.quiet, run.resuming = quiet, resume
    run.callbacks = plan.callbacks()
    run.update(params=_plain({**plan.workflow.models[index].params, **filled}),
               param_count=sum(p.numel() for p in model.parameters()))
    if resume:
        _restore_transforms(run, plan)
    try:
        result = plan.trainer().fit(model, plan.data, run)
    except KernelError as exc:
        if run.info["status"] in ("queued", "running"):
            run.set_status("failed", str(exc))
        raise
    except BaseException as exc:
        if run.info["status"] in ("queued", "running"):
            run.set_status("failed", f"{type(exc).__name__}: {exc}")
        raise
    if result.status == "completed":
        write_artifacts(run, plan, model, reports)
    return result


def write_artifacts(run: Run, plan, model, reports=None):
    """Analyzer reports, rendered samples and the confusion matrix; a failure here only warns."""
    from . import artifacts

    folder = run.artifacts
    steps = [("reports", lambda: shutil.copytree(reports, folder / "reports", dirs_exist_ok=True) if reports
              else artifacts.write_reports(plan, folder / "reports")),
             ("confusion matrix", lambda: _confusion_matrix(run, plan, model))]
    if hasattr(artifacts, "write_samples"):
        steps.insert(1, ("samples", lambda: artifacts.write_samples(plan, folder / "samples", model=model)))
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            print(f"kernel: warning: run {run.id}: could not write {name}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def _confusion_matrix(run: Run, plan, model):
    import torch

    from .data import forward, to_device
    from .training import checkpoint as ckpt

    data = plan.data
    if data.facts.get("task") not in ("multiclass", "binary") or data.valid is None:
        return
    best = run.checkpoints / "best.pt"
    if best.exists():
        model.load_state_dict(ckpt.load(best)["model"])
    device = next(model.parameters()).device
    n = int(data.facts["num_classes"])
    metric = plan.build("kernel.confusion_matrix", "metric", task="multiclass", num_classes=n).to(device)
    model.eval()
    with torch.no_grad():
        for inputs, targets in data.loader("valid", batch_size=256, shuffle=False):
            out = forward(model, to_device(inputs, device))
            metric.update(out.float(), to_device(targets, device))
    matrix = metric.compute().cpu().tolist()
    classes = data.classes or [str(i) for i in range(n)]
    run.artifacts.mkdir(parents=True, exist_ok=True)
    (run.artifacts / "confusion_matrix.json").write_text(json.dumps({"classes": classes, "matrix": matrix}))


def _restore_transforms(run: Run, plan):
    from .training import checkpoint as ckpt

    try:
        saved, _, _ = ckpt.load_newest(run.checkpoints)
    except ckpt.CheckpointError:
        return
    for t, state in zip(plan.data.transforms, saved.get("transforms") or []):
        if state is not None and hasattr(t, "load_state_dict"):
            t.load_state_dict(state)


def resume(ref: str, quiet: bool = False, workspace=None):
    """Continue an interrupted or failed run from its newest good checkpoint."""
    store = RunStore(workspace)
    run = store.get(ref)
    status = run.status
    if status == "completed":
        raise KernelError(f"run {run.id} is already complete; start a new run with `kernel run`")
    if status == "running":
        raise KernelError(f"run {run.id} is still running (process {run.info.get('pid')})")
    if status == "queued":
        return _execute_from_dir(run, quiet, resume=False)
    from .training import checkpoint as ckpt

    try:
        ckpt.load_newest(run.checkpoints)
    except ckpt.CheckpointError as exc:
        raise KernelError(f"cannot resume run {run.id}: {exc}") from None
    return _execute_from_dir(run, quiet, resume=True)


def _execute_from_dir(run: Run, quiet: bool, resume: bool):
    from .build import prepare
    from .workflow import Workflow

    workflow = Workflow.from_dict(run.info["spec"], source=run.info.get("source"))
    plan = prepare(workflow)
    if plan.data.fingerprint != run.info.get("fingerprint"):
        print(f"kernel: warning: the data of run {run.id} changed since it started (fingerprint "
              f"{run.info.get('fingerprint')} -> {plan.data.fingerprint})", file=sys.stderr)
    return execute(run, plan, quiet=quiet, resume=resume)


def _run_parallel(runs: list, parallel: int, quiet: bool, store: RunStore):
    # workers import what this process can: its sys.path (a script's folder, a test's helpers) goes along
    path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "KERNEL_HOME": str(store.root.parent), "KERNEL_PROGRESS": "lines", "PYTHONPATH": path}
    waiting, active = list(runs), {}
    try:
        while waiting or active:
            while waiting and len(active) < parallel:
                run = waiting.pop(0)
                cmd = [sys.executable, "-m", "kernel.runner", str(run.dir)] + (["--quiet"] if quiet else [])
                active[run.id] = (run, subprocess.Popen(cmd, env=env))
            time.sleep(0.1)
            for run_id, (run, proc) in list(active.items()):
                if proc.poll() is None:
                    continue
                del active[run_id]
                info = Run.open(run.dir, store)
                if info.info["status"] in ("queued", "running"):
                    info.set_status("failed", f"worker process exited with code {proc.returncode}")
    except KeyboardInterrupt:
        for run, proc in active.values():
            proc.wait()  # each worker got the signal too and is writing its last.pt
        raise


class Results:
    """The runs of one ``run_workflow`` call: iterate over them, tabulate, pick the best, plot curves."""

    def __init__(self, runs: list[Run]):
        self.runs = list(runs)

    def __iter__(self):
        return iter(self.runs)

    def __len__(self):
        return len(self.runs)

    def __getitem__(self, i):
        return self.runs[i]

    @property
    def ok(self) -> bool:
        return all(r.status == "completed" for r in self.runs)

    def best(self, metric: str | None = None, mode: str | None = None) -> Run:
        """The run whose best ``metric`` (default: the monitored one) is best: highest, or lowest where
        lower is better (the run's own ``mode`` for its monitor, else :func:`kernel.metric_mode.mode_for`)."""
        from .metric_mode import mode_for

        metric = metric or self.runs[0].info.get("monitor")
        mode = mode or mode_for(metric, self.runs[0].info)
        scored = [(r.info.get("best", {}).get(metric), r) for r in self.runs]
        scored = [(v, r) for v, r in scored if isinstance(v, (int, float))]
        if not scored:
            raise KernelError(f"no run has a value for {metric!r}")
        return (max if mode == "max" else min)(scored, key=lambda vr: vr[0])[1]

    def table(self, wide: bool = False):
        """The runs side by side, key columns (``wide``: every column): ``print(results.table())``
        prints it as text, ``rich.print(results.table())`` in colour."""
        from .compare import compare_rows, key_table, rich_table
        from .run_reader import run_folders, short_ids

        columns, rows = compare_rows(self.runs)
        if wide:
            return rich_table(columns, rows)
        among = [p.name for p in run_folders(self.runs[0].dir.parent)] if self.runs else []
        return key_table(columns, rows, self.runs, short_ids([r.id for r in self.runs], among))

    def print_summary(self, console=None):
        from .compare import print_table

        console.print(self.table()) if console is not None else print_table(self.table())

    def plot(self, path=None, metric: str | None = None):
        """The validation curves of the runs overlaid; saved to ``path`` when given. Returns the figure."""
        from .compare import plot_curves

        return plot_curves([r.info for r in self.runs], [r.metrics() for r in self.runs], path, metric)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "runs": [{k: v for k, v in r.info.items() if k != "spec"} for r in self.runs]}


def _plain(value):
    """JSON-ready: tuples become lists, anything else unusual becomes text."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _version() -> str:
    from . import __version__

    return __version__


def main(argv=None) -> int:
    """``python -m kernel.runner RUN_DIR [--quiet] [--resume]``: train one run (a --parallel worker)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kernel.runner")
    parser.add_argument("run_dir")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run = Run.open(args.run_dir)
    try:
        result = _execute_from_dir(run, args.quiet, args.resume)
    except KernelError as exc:
        print(f"kernel: error: run {run.id}: {exc}", file=sys.stderr)
        if Run.open(run.dir).info["status"] in ("queued", "running"):
            run.set_status("failed", str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
