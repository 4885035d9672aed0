"""Running a workflow: one run per model, one after another or in ``--parallel N`` processes.

A run is fully described by its ``run.json`` (the workflow and the model's index), so a worker
process, ``kernel resume`` and the sequential loop all train through :func:`execute`, which holds
the run's lock (one writer per run) for the training and the artifacts.
One model that fails is recorded as failed; the others still train. Ctrl-C (or SIGTERM) stops the
whole workflow, and the runs that can go on are named with their ``kernel resume`` line.
Rebuilding a run from its run.json imports only what the user allows (kernel/allowed_imports.py).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

from . import distributed
from .errors import KernelError, debugging
from .store import ReplicaRun, Run, RunStore, clean_temporary_files, read_run_json, scan_jsonl, write_atomic

KEEP_CHECKPOINTS_ENV = "KERNEL_KEEP_CHECKPOINTS"


def say(message: str):
    """What the runner tells the user about a run (not progress): stderr, even when quiet (rank 0's only)."""
    if distributed.is_main():
        print(f"kernel: {message}", file=sys.stderr, flush=True)


def keep_checkpoints_default(keep: bool | None) -> bool:
    """The ``keep_checkpoints`` setting: given, else ``KERNEL_KEEP_CHECKPOINTS``, else False."""
    if keep is not None:
        return bool(keep)
    return os.environ.get(KEEP_CHECKPOINTS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def run_workflow(workflow, parallel: int = 1, quiet: bool = False, workspace=None, overrides=None,
                 catalog=None, keep_checkpoints: bool | None = None, callbacks=(), record=None,
                 data=None, artifacts: bool = True, models=None) -> "Results":
    """Train every model of ``workflow``; returns :class:`Results` (one run each).

    ``models``: the indices of the models to train, when not all (``Workflow.model_indices``: what
    ``kernel run --only`` and ``--shard`` take); each run keeps its model's index in the workflow.

    ``keep_checkpoints``: keep every checkpoint of a completed run (default: only the slimmed
    ``best.pt`` that ``kernel.load`` needs; ``KERNEL_KEEP_CHECKPOINTS=1`` sets the default).
    What a plugin that runs workflows (a tuner) adds: ``callbacks``, callback objects given to
    every run besides the workflow's own (a pruner); ``record``, fields written into each run.json
    (``{"study": ..., "trial": 3}``); ``data``, the ``kernel.Data`` of an earlier run of the same
    ``[dataset]`` and seed, reused instead of building and fitting it again; ``artifacts=False``,
    runs that skip what only a person looks at (analyzer reports, rendered samples, the confusion
    matrix, TensorBoard's pictures and graph: ``artifacts: "skipped"`` in run.json, and
    ``kernel resume RUN`` writes them later), for the many runs of a search.
    Ctrl-C or SIGTERM stops the whole workflow: the runs that can go on are named, then
    KeyboardInterrupt is raised.
    """
    from .build import prepare
    from .catalog import get_catalog
    from .data import majority_baseline
    from .dryrun import check_models
    from .interrupts import StopSignals

    if overrides:
        workflow = workflow.with_overrides(overrides)
    if not isinstance(parallel, int) or parallel < 1:
        raise KernelError(f"--parallel must be 1 or more, not {parallel!r}")
    callbacks = list(callbacks)
    if callbacks and parallel > 1:
        raise KernelError("callback objects live in this process: run with parallel=1")
    if parallel > 1 and distributed.active():
        raise KernelError("--parallel and several processes per run (--nproc-per-node) do not go together: "
                          "each model's run already takes every process")
    record = _checked_record(record)
    plan = prepare(workflow, catalog or get_catalog(), data=data)
    trainer = plan.trainer()
    describe = getattr(trainer, "describe", None)
    defaults = describe(plan.data) if callable(describe) else {}
    # what the run would fail on (a batch that cannot stack, a loss or metric that does not fit the
    # model's output) is the user's to fix: found on one real batch, before any run exists
    indices = list(range(len(workflow.models))) if models is None else list(models)
    if distributed.active() and "processes" in defaults:
        from .console import step

        step(f"training each run on {defaults['processes']} processes: the global batch of {defaults['batch_size']} "
             f"is {defaults['process_batch_size']} per process (the learning rate is the workflow's, unscaled)")
    check_models(plan, trainer, defaults, indices)
    plan.callbacks()  # the workflow's callbacks must build
    store = RunStore(workspace)
    keep = keep_checkpoints_default(keep_checkpoints)
    if not artifacts:
        record = {**record, "artifacts": "skipped"}
    if distributed.is_main():  # it alone writes the runs; the baseline may read the whole training split
        baseline = majority_baseline(plan.data)
        runs = [_create(store, plan, i, defaults, baseline, keep, record) for i in indices]
    if distributed.active():  # the others train the runs rank 0 made, and write nothing
        made = distributed.broadcast([(str(r.dir), r.info) for r in runs] if distributed.is_main() else None)
        runs = runs if distributed.is_main() else [ReplicaRun(path, info, store) for path, info in made]
    with StopSignals() as stop:
        try:
            if parallel > 1 and len(runs) > 1:
                _run_parallel(runs, parallel, quiet, store, stop, _allowed_for_workers(plan))
            else:
                reports = None
                for run in runs:
                    try:
                        execute(run, plan, quiet=quiet, reports=reports, callbacks=callbacks)
                        if reports is None and (run.artifacts / "reports").is_dir():
                            reports = run.artifacts / "reports"  # the analyzers ran once: copied to the others
                    except KeyboardInterrupt:
                        raise
                    except RunChanged as exc:
                        say(f"skipped: {exc}")
                    except Exception as exc:
                        say(f"run {run.id} failed: {_describe_error(exc)}")
                        if debugging():
                            traceback.print_exception(exc, file=sys.stderr)
                        if distributed.active():  # the processes may not agree on where they are: stop them all
                            raise
                    if stop.requested:  # the trainer ended its run cleanly on Ctrl-C: stop the workflow too
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            say_resumable(runs, store)
            raise
    if not distributed.is_main():
        return Results(runs)
    results = Results([Run.open(r.dir, store) for r in runs])
    if artifacts:
        finish_sections(plan, results)
    return results


def _tell_launcher(runs: list):
    """Name the runs to the ``kernel run --nproc-per-node`` launcher (a file it gave): should a process
    die, the launcher marks them failed with the rank and the reason (kernel/launch.py)."""
    path = os.environ.get("KERNEL_LAUNCH_RUNS")
    if path and distributed.active():
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(f"{r.dir}\n" for r in runs)


def finish_sections(plan, results: "Results"):
    """Each plugin table's ``finish(results)`` (hook ``kernel_sections``), once the runs have ended.
    A failure is the table's, not the runs': reported and listed in ``results.problems``."""
    for name, table in plan.workflow.sections.items():
        section = plan.catalog.target(plan.catalog.get(name, "section"))(**table)
        finish = getattr(section, "finish", None)
        if not callable(finish):
            continue
        try:
            finish(results)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            results.problems.append(f"[{name}]: {_describe_error(exc)}")
            say(f"[{name}] failed: {_describe_error(exc)}")
            if debugging():
                traceback.print_exception(exc, file=sys.stderr)


def _allowed_for_workers(plan) -> list[str]:
    """The import paths of the user's own workflow: the --parallel workers rebuild it from run.json,
    which this process has just written, and may import exactly these."""
    from .allowed_imports import import_paths

    return import_paths(plan.workflow.to_dict(), plan.catalog)


def say_resumable(runs: list, store: RunStore):
    """After a stop: which runs can go on, each with the command that continues it."""
    lines = []
    for run in runs:
        try:
            info = read_run_json(run.dir / "run.json")
        except KernelError:
            continue
        status = Run(run.dir, info, store).status
        if status == "interrupted":
            done = f"{info.get('epochs_done', 0)}/{info.get('epochs') or '?'} epochs"
            lines.append(f"  kernel resume {run.id}   (interrupted, {done})")
        elif status == "queued":
            lines.append(f"  kernel resume {run.id}   (not started)")
    if lines:
        say("stopped; these runs can go on:\n" + "\n".join(lines))
    else:
        say("stopped")


def _describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KernelError) else str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        text += " (the disk is full: free some space, then `kernel resume` the run)"
    return text


#: run.json fields a caller's ``record`` may not set: the kernel's own
_OWN_FIELDS = frozenset(("id", "workflow", "model", "status", "reason", "created", "started", "ended",
                         "duration_s", "epochs_done", "best", "final", "tags", "pid", "host", "model_index",
                         "use", "fingerprint", "seed", "spec", "params", "defaults", "param_count", "epochs",
                         "monitor", "mode", "baseline", "classes", "facts", "source", "keep_checkpoints",
                         "versions", "artifacts", "checkpoint"))


def _checked_record(record) -> dict:
    record = dict(record or {})
    taken = sorted(set(record) & _OWN_FIELDS)
    if taken:
        raise KernelError(f"record: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} the kernel's own "
                          f"run.json field(s); choose other names")
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise KernelError(f"record: the fields must be plain JSON values ({exc})") from None
    return record


def _create(store: RunStore, plan, index: int, defaults: dict, baseline: dict | None = None,
            keep_checkpoints: bool = False, record: dict | None = None) -> Run:
    import torch

    wf, data = plan.workflow, plan.data
    spec = wf.models[index]
    return store.create(
        wf.name, wf.model_label(index), model_index=index, use=spec.use, fingerprint=data.fingerprint,
        seed=wf.seed, tags=list(wf.tags), spec=wf.to_dict(), params=_plain(dict(spec.params)),
        defaults=defaults, param_count=None, epochs=defaults.get("epochs"), monitor=defaults.get("monitor"),
        mode=defaults.get("mode"), baseline=baseline, classes=data.classes, facts=_plain(data.facts), source=wf.source,
        keep_checkpoints=keep_checkpoints,
        versions={"python": platform.python_version(), "torch": torch.__version__, "kernel": _version()},
        **(record or {}))


def _holding(run: Run, lock):
    """The run's lock: the caller's when it holds it already, else taken here for the block."""
    from .runlock import RunLock

    if lock is not None:  # callers pass only a lock they hold
        return contextlib.nullcontext(lock)
    return RunLock(run.dir)


def execute(run: Run, plan, quiet: bool = False, resume: bool = False, reports=None, lock=None, callbacks=(),
            told=None):
    """Build the run's model, train it, and write its artifacts; returns the trainer's Result.
    ``callbacks``: callback objects added to the workflow's own for this run.

    The run's lock is held throughout (taken here unless ``lock``, already held, is given): a
    second writer gets :class:`kernel.runlock.RunLocked` before it touches anything. On several
    processes rank 0 checks and tells the others (``told``: what they were told already) to train
    the run with it, or why not.
    """
    if not distributed.is_main():
        word = told or distributed.broadcast()
        if word[0] == "skip":
            raise RunChanged(word[1])
        if word[0] != "train":
            raise KernelError(word[1])  # rank 0 said it; this process ends as it does
        run.info = word[1]
        return _train(run, plan, quiet, word[2], reports, callbacks)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(_holding(run, lock))
            refuse_links(run.dir)
            # another process may have trained the run while this one waited for it (`kernel resume` of
            # a queued run during a long `kernel run`): what is on disk now wins, and is left as it is
            status = read_run_json(run.dir / "run.json").get("status")
            if status != run.info.get("status"):
                raise RunChanged(f"run {run.id} is {status} now: another process took it up meanwhile; left as it is")
        except RunChanged as exc:
            _tell(("skip", str(exc)))
            raise
        except KernelError as exc:
            _tell(("error", str(exc)))
            raise
        _tell(("train", run.info, resume, str(run.dir)))
        _tell_launcher([run])  # locked and training: the launcher may mark it should a process die
        return _train(run, plan, quiet, resume, reports, callbacks)


_TOLD = [0]  # how many words rank 0 has sent the others (a resume checks that it sent them one)


def _tell(word: tuple):
    if distributed.active():
        distributed.broadcast(word)
        _TOLD[0] += 1


def refuse_links(run_dir):
    """A run folder to be written must hold no links: one from someone else could point its
    metrics, checkpoints or artifacts at the user's own files, which training would then write."""
    for folder, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                raise KernelError(f"{path} is a link (to {os.readlink(path)}); a run folder is data and "
                                  f"the kernel writes only plain files in it: remove the link and try again")


class RunChanged(KernelError):
    """The run changed on disk since this process read it: another process trained it."""


def _train(run: Run, plan, quiet: bool, resume: bool, reports, callbacks=()):
    from .seeding import seed_everything
    from .training.result import Result

    index = run.info["model_index"]
    seed_everything(plan.workflow.seed)
    model, filled = plan.model(index)
    run.quiet, run.resuming = quiet, resume
    run.callbacks = plan.callbacks() + list(callbacks)
    # "pending" until the artifacts are written: a run stopped in between is not taken for complete
    skipped = run.info.get("artifacts") == "skipped"
    run.update(params=_plain({**plan.workflow.models[index].params, **filled}),
               param_count=sum(p.numel() for p in model.parameters()), artifacts="skipped" if skipped else "pending")
    if resume:
        _restore_transforms(run, plan)
    try:
        result = plan.trainer().fit(model, plan.data, run)
    except KeyboardInterrupt:
        _record_end(run, "interrupted", "interrupted")
        raise
    except KernelError as exc:
        _record_end(run, "failed", str(exc))
        raise
    except BaseException as exc:
        _record_end(run, "failed", _describe_error(exc))
        raise
    if not isinstance(result, Result):
        trainer = plan.workflow.trainer.use
        reason = (f"the trainer {trainer}'s fit returned {type(result).__name__}, not a kernel Result "
                  f"(the trainer contract: docs/hooks.md)")
        _record_end(run, "failed", reason, force=True)
        raise KernelError(reason)
    if result.status == "completed" and distributed.is_main():
        finish(run, plan, model, reports)
    return result


def _record_end(run: Run, status: str, reason: str, force: bool = False):
    """Mark the run ended unless the trainer did; a run.json that cannot be written (a full disk) is
    said on stderr, since the run will then read as interrupted rather than failed."""
    try:
        on_disk = read_run_json(run.dir / "run.json").get("status")
    except KernelError:
        on_disk = run.info.get("status")
    if not force and on_disk not in ("queued", "running"):
        return
    try:
        run.set_status(status, reason)
    except OSError as exc:
        say(f"error: run {run.id}: could not record in run.json that it {status} ({reason}): {exc}")


def finish(run: Run, plan, model, reports=None):
    """A completed run's last steps: artifacts, then (unless kept) the checkpoints slimmed to what
    ``kernel.load`` needs, then ``artifacts: written``. A stop before that leaves it to resume."""
    from .training import checkpoint as ckpt

    skipped = run.info.get("artifacts") == "skipped"
    if not skipped:
        write_artifacts(run, plan, model, reports)
    if not run.info.get("keep_checkpoints"):
        try:
            ckpt.slim(run.checkpoints)
        except Exception as exc:  # each file is replaced atomically: a failure leaves the full ones
            say(f"warning: run {run.id}: could not slim its checkpoints ({type(exc).__name__}: {exc}); kept them")
    if not skipped:
        run.update(artifacts="written")


def write_artifacts(run: Run, plan, model, reports=None):
    """Analyzer reports, rendered samples and the confusion matrix; a failure here only warns."""
    from . import artifacts

    folder = run.artifacts
    steps = [("reports", lambda: shutil.copytree(reports, folder / "reports", dirs_exist_ok=True) if reports
              else artifacts.write_reports(plan, folder / "reports")),
             ("samples", lambda: artifacts.write_samples(plan, folder / "samples", model=model)),
             ("confusion matrix", lambda: _confusion_matrix(run, plan, model))]
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
    metric.distributed_available_fn = lambda: False  # rank 0 alone writes the artifacts: nothing to sum over processes
    model.eval()
    with torch.no_grad():
        for inputs, targets in data.loader("valid", batch_size=256, shuffle=False):
            out = forward(model, to_device(inputs, device))
            metric.update(out.float(), to_device(targets, device))
    matrix = metric.compute().cpu().tolist()
    classes = data.classes or [str(i) for i in range(n)]
    run.artifacts.mkdir(parents=True, exist_ok=True)
    write_atomic(run.artifacts / "confusion_matrix.json", json.dumps({"classes": classes, "matrix": matrix}).encode())


def _restore_transforms(run: Run, plan):
    from .training import checkpoint as ckpt

    states = None
    if distributed.is_main():
        try:
            states = ckpt.load_newest(run.checkpoints)[0].get("transforms")
        except ckpt.CheckpointError:
            pass
    states = distributed.broadcast(states)
    for t, state in zip(plan.data.transforms, states or []):
        if state is not None and hasattr(t, "load_state_dict"):
            t.load_state_dict(state)


# -- resuming ---------------------------------------------------------------------------------------
def resume(ref: str, quiet: bool = False, workspace=None, allow_imports=None, force: bool = False,
           restart: bool = False, keep_checkpoints: bool | None = None):
    """Continue an interrupted or failed run from its newest good checkpoint.

    A run stopped before its first checkpoint (or with ``restart``) trains again from its first
    epoch. ``allow_imports``: import-path prefixes its run.json may name (see
    kernel/allowed_imports.py). ``force``: resume although the data changed or metrics.jsonl has a
    damaged line. Holds the run's lock from the first look to the last write.
    """
    if distributed.active():
        return _resume_distributed(ref, quiet, workspace, allow_imports, force, restart, keep_checkpoints)
    return _resume(ref, quiet, workspace, allow_imports, force, restart, keep_checkpoints)


def _resume_distributed(ref, quiet, workspace, allow_imports, force, restart, keep_checkpoints):
    """``kernel resume`` on several processes: rank 0 does what one process does and tells the
    others the run to train with it; they rebuild it from the run.json rank 0 sent."""
    from .training.result import Result

    if distributed.is_main():
        told = _TOLD[0]
        try:
            result = _resume(ref, quiet, workspace, allow_imports, force, restart, keep_checkpoints)
        except BaseException as exc:
            if _TOLD[0] == told:  # refused before training: the others end the same way
                _tell(("error", str(exc) if isinstance(exc, KernelError) else _describe_error(exc)))
            raise
        if _TOLD[0] == told:  # nothing to train (the artifacts only): the others may go
            _tell(("skip", "nothing to train"))
        return result
    word = distributed.broadcast()
    if word[0] == "error":
        raise KernelError(word[1])  # rank 0 said it
    if word[0] != "train":
        return Result(ref, "completed", None, 0, {}, {}, None)  # rank 0 says what happened
    run = ReplicaRun(word[3], word[1], RunStore(workspace))
    allowance = _allowance(run, allow_imports)
    plan = _plan_from_dir(run, allowance, force=True)  # rank 0 has checked the data
    with _enforcing(run, allowance):
        return execute(run, plan, quiet=quiet, told=word)


def _resume(ref, quiet, workspace, allow_imports, force, restart, keep_checkpoints):
    from .interrupts import StopSignals
    from .runlock import RunLock

    store = RunStore(workspace)
    run = store.get(ref)
    with StopSignals(), RunLock(run.dir) as lock:
        run = Run.open(run.dir, store)  # as it is now that no one else can write it
        refuse_links(run.dir)  # before the first write (temporary files, metrics, checkpoints)
        removed = clean_temporary_files(run.dir)
        if removed:
            say(f"run {run.id}: removed {len(removed)} temporary file(s) a stopped writer left "
                f"({', '.join(p.name for p in removed)})")
        info = run.info
        if keep_checkpoints is not None:
            info["keep_checkpoints"] = bool(keep_checkpoints)
        status = info.get("status")
        if status == "completed":
            if info.get("artifacts") in ("pending", "skipped"):
                return _finish_artifacts(run, allow_imports)
            raise KernelError(f"run {run.id} is already complete; start a new run with `kernel run`")
        if status == "running" and info.get("host") not in (None, socket.gethostname()):
            raise KernelError(f"run {run.id} is marked running on host {info.get('host')} "
                              f"(process {info.get('pid')}); resume it there once it has stopped")
        if status == "queued":
            return _execute_from_dir(run, quiet, False, lock, allow_imports, force)
        _check_metrics(run, force)
        allowance = _allowance(run, allow_imports)
        plan = _plan_from_dir(run, allowance, force)  # refuses code and changed data before anything changes
        from .training import checkpoint as ckpt

        state = path = None
        if not restart:
            try:
                state, path, _ = ckpt.load_newest(run.checkpoints)  # the trainer names what it skipped
            except ckpt.CheckpointError as exc:
                if any((run.checkpoints / name).exists() for name in ckpt.NAMES):
                    raise KernelError(f"cannot resume run {run.id}: {exc}; `kernel resume {run.id} --restart` "
                                      f"trains it again from its first epoch") from None
        if state is None:
            why = "--restart" if restart else "it was stopped before its first checkpoint"
            say(f"run {run.id}: training it again from its first epoch ({why}); its metrics so far are cleared")
            _start_over(run)
            with _enforcing(run, allowance):
                return execute(run, plan, quiet=quiet, resume=False, lock=lock)
        batches = state.get("batches_done") or 0
        where = f"{state.get('epoch', 0)} epoch(s) done" + (
            f", {batches} batch(es) into epoch {state.get('epoch', 0) + 1}" if batches else "")
        say(f"run {run.id}: resuming from {path.relative_to(run.dir)} ({where})")
        with _enforcing(run, allowance):
            return execute(run, plan, quiet=quiet, resume=True, lock=lock)


def _check_metrics(run: Run, force: bool):
    """A resume rewrites metrics.jsonl from its good lines: a damaged line would vanish with its epoch."""
    path = run.dir / "metrics.jsonl"
    rows, problems = scan_jsonl(path)
    for number, problem, cut in problems:
        if cut:
            say(f"run {run.id}: {path} line {number} was cut while being written; dropped")
        elif force:
            say(f"run {run.id}: {path} line {number} is damaged ({problem}); dropped (--force)")
        else:
            raise KernelError(f"{path} line {number} is damaged ({problem}): resuming would drop it and the "
                              f"epoch it records; repair or delete the line, or resume with --force to drop it")
    if problems:  # dropped once, here: the trainer then reads a clean file and has nothing to warn about
        write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def _start_over(run: Run):
    """Forget what a run did before its first checkpoint: metrics, TensorBoard files, checkpoints."""
    (run.dir / "metrics.jsonl").unlink(missing_ok=True)
    shutil.rmtree(run.dir / "tensorboard", ignore_errors=True)
    shutil.rmtree(run.checkpoints, ignore_errors=True)
    run.update(epochs_done=0, best={}, final={}, duration_s=None, started=None)


def _finish_artifacts(run: Run, allow_imports):
    """A run stopped while its artifacts were written: write them again from its checkpoints."""
    from .training import checkpoint as ckpt
    from .training.result import Result

    allowance = _allowance(run, allow_imports)
    if run.info.get("artifacts") == "skipped":
        say(f"run {run.id}: its training is complete and its artifacts were skipped; writing them now")
        run.update(artifacts="pending")  # from here on, as for any run: written, or left to resume
    else:
        say(f"run {run.id}: its training was complete but it was stopped while writing its artifacts; "
            f"writing them again")
    plan = _plan_from_dir(run, allowance, force=True)
    with _enforcing(run, allowance):
        model, _ = plan.model(run.info["model_index"])
    for name in ("last.pt", "best.pt"):  # the final weights, else the best ones
        try:
            model.load_state_dict(ckpt.load(run.checkpoints / name)["model"])
            break
        except ckpt.CheckpointError:
            continue
    else:
        raise KernelError(f"run {run.id}: no usable checkpoint in {run.checkpoints} to write its artifacts from")
    with _enforcing(run, allowance):
        finish(run, plan, model)
    return Result(run.id, "completed", run.info.get("reason"), run.info.get("epochs_done", 0),
                  run.info.get("best") or {}, run.info.get("final") or {}, run.info.get("monitor"))


def _allowance(run: Run, allow_imports):
    from .allowed_imports import AllowedImports

    if isinstance(allow_imports, AllowedImports):
        return allow_imports
    return AllowedImports.from_user(allow_imports, where=f"{run.dir / 'run.json'}",
                                    how=f"`kernel resume {run.id} --allow-import {{}}`")


def _enforcing(run: Run, allow_imports):
    from .allowed_imports import enforcing

    return enforcing(_allowance(run, allow_imports))


def run_spec(run: Run) -> dict:
    """The workflow dict of a run's run.json, checked enough to rebuild it (a KernelError naming the file)."""
    info, path = run.info, run.dir / "run.json"
    spec = info.get("spec")
    if not isinstance(spec, dict):
        raise KernelError(f"{path} is damaged: 'spec' (the workflow) is missing or not an object")
    models = spec.get("models")
    index = info.get("model_index")
    if not isinstance(index, int) or not isinstance(models, list) or not 0 <= index < len(models):
        raise KernelError(f"{path} is damaged: 'model_index' {index!r} names no model of its workflow")
    return spec


def _plan_from_dir(run: Run, allow_imports, force: bool):
    """The run's workflow prepared again from its run.json, importing only what is allowed."""
    from .allowed_imports import check_spec
    from .build import prepare
    from .workflow import Workflow

    allowance = _allowance(run, allow_imports)
    spec = _same_batch(run_spec(run), run.info.get("defaults") or {})
    with _enforcing(run, allowance):
        check_spec(spec, allowance)  # before anything is built: the trainer resolves some names itself
        workflow = Workflow.from_dict(spec, source=run.info.get("source"))
        plan = prepare(workflow)
    if plan.data.fingerprint != run.info.get("fingerprint"):
        change = f"{run.info.get('fingerprint')} -> {plan.data.fingerprint}"
        if not force:
            raise KernelError(f"the data of run {run.id} changed since it started (fingerprint {change}): "
                              f"resuming would train one run on two datasets; `kernel resume {run.id} --force` "
                              f"resumes anyway, `kernel run` starts a new run")
        say(f"warning: the data of run {run.id} changed since it started (fingerprint {change}); resuming (--force)")
    return plan


def _same_batch(spec: dict, defaults: dict) -> dict:
    """The spec with ``batch_size = "auto"`` replaced by the size the run trained with: "auto" depends
    on the number of processes, and a run resumed on another number must keep its global batch."""
    trainer = spec.get("trainer") or {}
    params = trainer.get("params") or {}
    if trainer.get("use", "kernel.supervised") != "kernel.supervised" or params.get("batch_size", "auto") != "auto" \
            or not isinstance(defaults.get("batch_size"), int):
        return spec
    return {**spec, "trainer": {**trainer, "use": "kernel.supervised",
                                "params": {**params, "batch_size": defaults["batch_size"]}}}


def _execute_from_dir(run: Run, quiet: bool, resume: bool, lock=None, allow_imports=None, force: bool = False):
    allowance = _allowance(run, allow_imports)
    plan = _plan_from_dir(run, allowance, force)
    with _enforcing(run, allowance):
        return execute(run, plan, quiet=quiet, resume=resume, lock=lock)


def _run_parallel(runs: list, parallel: int, quiet: bool, store: RunStore, stop, allowed: list):
    # workers import what this process can: its sys.path (a script's folder, a test's helpers) goes along
    path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "KERNEL_HOME": str(store.root.parent), "KERNEL_PROGRESS": "lines", "PYTHONPATH": path}
    allow = [arg for prefix in allowed for arg in ("--allow-import", prefix)]
    waiting, active = list(runs), {}
    try:
        while waiting or active:
            while waiting and len(active) < parallel:
                run = waiting.pop(0)
                cmd = [sys.executable, "-m", "kernel.runner", str(run.dir), *allow] + (["--quiet"] if quiet else [])
                # a process group of its own: a terminal's Ctrl-C reaches this process only, which
                # passes one SIGINT on (two would make a trainer abort without its last.pt)
                active[run.id] = (run, subprocess.Popen(cmd, env=env, start_new_session=True))
            time.sleep(0.1)
            for run_id, (run, proc) in list(active.items()):
                if proc.poll() is None:
                    continue
                del active[run_id]
                _after_worker(run, proc, store)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        for run, proc in active.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for run, proc in active.values():
            while True:
                try:
                    proc.wait()  # each worker writes its last.pt and marks its run interrupted
                    break
                except KeyboardInterrupt:  # asked again: the workers abort now
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
        raise


def _after_worker(run: Run, proc, store: RunStore):
    """A worker that died without marking its run (killed, crashed) leaves it failed, said why."""
    from .runlock import RunLock, RunLocked

    try:
        with RunLock(run.dir):
            info = Run.open(run.dir, store)
            if info.info["status"] in ("queued", "running"):
                info.set_status("failed", f"worker process exited with code {proc.returncode}")
    except RunLocked:
        pass  # someone else (a `kernel resume`) is training it now
    except KernelError as exc:
        say(f"warning: {exc}")


class Results:
    """The runs of one ``run_workflow`` call: iterate over them, tabulate, pick the best, plot curves."""

    def __init__(self, runs: list[Run]):
        self.runs = list(runs)
        self.problems: list[str] = []  # what a plugin's table failed to do once the runs ended

    def __iter__(self):
        return iter(self.runs)

    def __len__(self):
        return len(self.runs)

    def __getitem__(self, i):
        return self.runs[i]

    @property
    def ok(self) -> bool:
        return all(r.status == "completed" for r in self.runs) and not self.problems

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

    def table(self, wide: bool = False, short_ids: bool = True):
        """The runs side by side, key columns (``wide``: every column, whole ids):
        ``print(results.table())`` prints it as text, ``rich.print(results.table())`` in colour."""
        from .compare import compare_rows, key_table, rich_table
        from .run_reader import store_short_ids

        columns, rows = compare_rows(self.runs)
        if wide:
            return rich_table(columns, rows)
        ids = store_short_ids(self.runs[0].dir.parent, [r.id for r in self.runs]) if short_ids and self.runs else None
        return key_table(columns, rows, self.runs, ids)

    def print_summary(self, console=None):
        """The end-of-run table: key columns, short ids where the width is limited (a terminal)."""
        from .compare import output_width, print_table

        if console is not None:
            console.print(self.table())
        else:
            print_table(self.table(short_ids=output_width() is not None))

    def plot(self, path=None, metric: str | None = None):
        """The validation curves of the runs overlaid; saved to ``path`` when given. Returns the figure."""
        from .compare import plot_curves

        return plot_curves([r.info for r in self.runs], [r.metrics() for r in self.runs], path, metric)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems,
                "runs": [{k: v for k, v in r.info.items() if k != "spec"} for r in self.runs]}


def _plain(value):
    """JSON-ready: tuples become lists, anything else unusual becomes text."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _version() -> str:
    from . import __version__

    return __version__


def main(argv=None) -> int:
    """``python -m kernel.runner RUN_DIR [--quiet] [--resume] [--allow-import PREFIX ...]``: train one
    run (a --parallel worker). ``--allow-import``: what the parent's workflow imports (its own file)."""
    import argparse

    from .interrupts import StopSignals
    from .runlock import RunLock

    parser = argparse.ArgumentParser(prog="python -m kernel.runner")
    parser.add_argument("run_dir")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--allow-import", action="append", default=[], metavar="PREFIX")
    args = parser.parse_args(argv)
    try:
        run = Run.open(args.run_dir)
    except KernelError as exc:
        print(f"kernel: error: {exc}", file=sys.stderr)
        return 2
    with StopSignals():
        try:
            with RunLock(run.dir) as lock:
                try:
                    result = _execute_from_dir(run, args.quiet, args.resume, lock, args.allow_import)
                except KernelError as exc:
                    print(f"kernel: error: run {run.id}: {exc}", file=sys.stderr)
                    _record_end(run, "failed", str(exc))
                    return 2
        except KernelError as exc:  # the lock: another writer, or a .lock that is no plain file
            print(f"kernel: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        except Exception:
            traceback.print_exc()
            return 1
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
