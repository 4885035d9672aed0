"""``kernel tune FILE``: run the workflow's study (registered lazily: nothing heavy is imported
until the command runs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def register(cli):
    p = cli.command("tune", "plugin_tuning.command:tune_cmd", help="tune a workflow's settings with an Optuna study",
                    description="Run the Optuna study of a workflow's [tuning] table: each trial is one run with "
                                "sampled values, pruned when it falls behind. Running the same command again "
                                "continues the study. docs/tuning.md has the [tuning] reference.")
    p.add_argument("file", help="a workflow TOML file with a [tuning] table")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a setting, as in `kernel run` (tuning settings too: --set tuning.trials=5)")
    p.add_argument("--set-file", dest="set_files", action="append", default=[], metavar="FILE",
                   help="overrides from a TOML file of \"PATH\" = VALUE lines")
    p.add_argument("--trials", type=int, help="the number of finished trials the study ends with (default: tuning.trials)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this many seconds")
    p.add_argument("--study", help="the study's name (default: tuning.study, else the workflow's name)")
    p.add_argument("--storage", metavar="URL",
                   help="an Optuna storage URL, e.g. postgresql://user@host/db to share the study between machines "
                        "(default: tuning.storage, else SQLite in the workspace)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="run K worker processes on this machine")
    p.add_argument("-o", "--output", metavar="TOML",
                   help="where to write the best values (default: studies/STUDY.best.toml in the workspace)")
    p.add_argument("--show", action="store_true", help="print the study's settings and trials; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the result (or, with --show, the study) as JSON")


def quiet_optuna():
    """On the command line each trial's end is one line of ours, a failed one with its reason:
    Optuna's own log lines (a traceback per failed trial) would repeat it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def tune_cmd(args):
    import kernel

    from .study import Tuner

    quiet_optuna()
    workflow = kernel.Workflow.from_file(args.file)
    overrides = kernel.parse_overrides(args.overrides, args.set_files)
    if overrides:
        workflow = workflow.with_overrides(overrides)
    if args.workers < 1:
        raise kernel.KernelError(f"--workers must be 1 or more, not {args.workers}")
    tuner = Tuner(workflow, trials=args.trials, timeout=args.timeout, study=args.study, storage=args.storage,
                  catalog=kernel.get_catalog(tuple(args.disabled)))
    if args.show:
        return show(tuner, args.json)
    if args.workers > 1:
        _limit_threads(args.workers)
    tuner.resolve().open()
    children = _start_workers(args, tuner) if args.workers > 1 else []
    try:
        study = _work(tuner, args)
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        _wait(children)
        print(f"kernel: tuning stopped; `kernel tune {args.file}` continues study {tuner.name!r}", file=sys.stderr)
        raise
    failed = _wait(children)
    tuner.finish_best()
    return _finish(tuner, study, args, failed)


def _work(tuner, args):
    """This process's own trials, with a progress line unless quiet."""
    if args.quiet or args.json:
        return tuner.work()
    from .progress import StudyProgress

    with StudyProgress(tuner) as progress:
        return tuner.work(on_trial=progress.update)


def _finish(tuner, study, args, failed_workers: int) -> int:
    from .results import best_trial, print_results, summary, write_overrides

    best = best_trial(study)
    path = write_overrides(tuner, best, args.output) if best is not None else None
    if args.json:
        out = {"study": tuner.name, "storage": tuner.shown_url, "monitor": tuner.monitor,
               "direction": tuner.direction, **summary(study),
               "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                                  "run": best.user_attrs.get("run")},
               "overrides": str(path) if path else None}
        print(json.dumps(out, indent=2, default=str))
    else:
        print_results(tuner, study, overrides=path)
    if failed_workers:
        print(f"kernel: warning: {failed_workers} worker process(es) ended with an error (their stderr is above)",
              file=sys.stderr)
    return 0 if best is not None and not failed_workers else 1


def show(tuner, as_json: bool) -> int:
    """The study's settings and space, and its trials when it exists; creates nothing."""
    from .results import print_results, summary

    section = tuner.section
    settings = {"study": tuner.name, "storage": tuner.shown_url, "trials": tuner.trials, "timeout": tuner.timeout,
                "direction": section.direction, "monitor": section.monitor, "sampler": section.sampler[0],
                "pruner": section.pruner[0], "seed": tuner.seed, "model": tuner.workflow.model_label(tuner.index),
                "heartbeat": section.heartbeat, "retries": section.retries}
    space = {p.path: p.describe() for p in section.params}
    study = tuner.open(create=False) if _storage_exists(tuner) else None
    if as_json:
        print(json.dumps({"settings": settings, "space": space,
                          "trials": None if study is None else summary(study)}, indent=2, default=str))
        return 0
    _columns(["setting", "value"], [[k, "none" if v is None else v] for k, v in settings.items()])
    _columns(["parameter", "distribution"], list(space.items()))
    if study is None:
        print(f"study {tuner.name!r} has no trials yet; `kernel tune {tuner.workflow.source}` starts it")
        return 0
    tuner.monitor = study.user_attrs.get("monitor", section.monitor)
    tuner.direction = study.direction.name.lower()
    print_results(tuner, study)
    return 0


def _columns(headers: list, rows: list):
    widths = [max(len(str(r[0])) for r in [headers, *rows])]
    for row in [headers, *rows]:
        print(f"{str(row[0]).ljust(widths[0])}  {row[1]}")
    print()


def _storage_exists(tuner) -> bool:
    if tuner.url.startswith("sqlite:///"):
        return os.path.exists(tuner.url[len("sqlite:///"):])
    return True


# -- several workers on this machine --------------------------------------------------------------
def _limit_threads(workers: int):
    """K workers share the cores: each gets its part, instead of all of them fighting for all."""
    share = max(1, (os.cpu_count() or 1) // workers)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(share)
    import torch

    torch.set_num_threads(share)


def _start_workers(args, tuner) -> list:
    spec = {"file": args.file, "overrides": args.overrides, "set_files": args.set_files, "trials": tuner.trials,
            "timeout": args.timeout, "study": tuner.name, "storage": tuner.url, "disabled": list(args.disabled)}
    return [subprocess.Popen([sys.executable, "-m", "plugin_tuning.worker", json.dumps({**spec, "seed_offset": i})],
                             env=os.environ.copy())
            for i in range(1, args.workers)]


def _wait(children) -> int:
    return sum(child.wait() != 0 for child in children)
