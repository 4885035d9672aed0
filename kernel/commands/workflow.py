"""``kernel run``, ``kernel analyze`` and ``kernel render``: the verbs that take a workflow file."""
from __future__ import annotations

import json
import sys


def _workflow_args(p):
    p.add_argument("file", help="a workflow TOML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a setting, e.g. --set trainer.epochs=3 --set models[0].dropout=0.2")
    p.add_argument("--set-file", dest="set_files", action="append", default=[], metavar="FILE",
                   help="overrides from a TOML file of \"PATH\" = VALUE lines (e.g. the best.toml `kernel tune` "
                        "writes); --set options win over it")


def register(cli):
    p = cli.command("run", "kernel.commands.workflow:run_cmd", help="train every model of a workflow",
                    description="Train every model of a workflow, one run each, and compare them.")
    _workflow_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="build everything, pass one batch through each model, print the plan, train nothing")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="train N models at once, in processes")
    part = p.add_mutually_exclusive_group()
    part.add_argument("--only", action="append", default=[], metavar="MODEL",
                      help="train only this model (its name as `kernel runs` shows it); repeatable")
    part.add_argument("--shard", metavar="I/N",
                      help="train every N-th model from the I-th: N commands (I = 1..N), on one machine or "
                           "several sharing the run store, train each model once (docs/user-guide.md)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the plan or the results as JSON")
    p.add_argument("--keep-checkpoints", action="store_true", default=None,
                   help="keep every checkpoint of a completed run (default: only best.pt, slimmed to what "
                        "kernel.load needs; also KERNEL_KEEP_CHECKPOINTS=1)")
    from ..launch import add_options

    add_options(p)
    p = cli.command("analyze", "kernel.commands.workflow:analyze_cmd",
                    help="run a workflow's analyzers over its data and write their reports")
    _workflow_args(p)
    p.add_argument("-o", "--output", help="folder for the reports (default: analysis/<workflow> in the workspace)")
    p = cli.command("render", "kernel.commands.workflow:render_cmd",
                    help="write PNGs of one sample through the chosen renderers")
    _workflow_args(p)
    p.add_argument("--index", type=int, default=0, help="the sample's index in the split")
    p.add_argument("--split", default="train", help="train, valid or test")
    p.add_argument("-o", "--output", help="folder for the PNGs (default: renders/<workflow> in the workspace)")


def load_workflow(args):
    from ..workflow import Workflow, parse_overrides

    workflow = Workflow.from_file(args.file)
    overrides = parse_overrides(args.overrides, getattr(args, "set_files", ()))
    return workflow.with_overrides(overrides) if overrides else workflow


def _plan(args):
    from ..build import prepare
    from ..catalog import get_catalog

    return prepare(load_workflow(args), get_catalog(tuple(args.disabled)))


def run_cmd(args):
    from .. import distributed, launch

    if launch.wanted(args):
        return launch.run(args, lambda: load_workflow(args))
    with distributed.joined():
        return _run(args)


def _run(args):
    from .. import distributed
    from ..console import show_steps

    show_steps(not args.quiet and not args.json and distributed.is_main())
    if args.dry_run:
        from ..dryrun import describe_plan, print_plan, problems

        info = describe_plan(_plan(args))
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print_plan(info)
        for line in problems(info, "warning"):
            print(f"kernel: warning: {line}", file=sys.stderr)
        found = problems(info)
        for line in found:  # the table's cell may be cut or wrapped: each problem in full, where errors go
            print(f"kernel: error: {line}", file=sys.stderr)
        return 2 if found else 0
    workflow = load_workflow(args)
    from ..runner import run_workflow

    models = workflow.model_indices(args.only, args.shard)
    if args.shard and not models:
        print(f"kernel: shard {args.shard} has no model to train (workflow {workflow.name!r} has "
              f"{len(workflow.models)}): nothing to do", file=sys.stderr)
        return 0
    results = run_workflow(workflow, parallel=args.parallel, quiet=args.quiet, keep_checkpoints=args.keep_checkpoints,
                           models=models)
    if not distributed.is_main():
        return 0  # rank 0 reports
    if args.json:
        print(json.dumps(results.to_dict(), indent=2, default=str))
    else:
        results.print_summary()
        print_where(results)
    return 0 if results.ok else 1


def print_where(results):
    """The closing lines of a run: the best model, where its files are, what to look at next."""
    from ..errors import KernelError

    if not results.runs:
        return
    store = results.runs[0].dir.parent
    try:
        best = results.best()
    except KernelError:
        best = None
    if best is not None:
        metric = best.info.get("monitor")
        print(f"best: {best.info.get('model')} ({metric} {best.info['best'][metric]:.4g}), run {best.id}")
    print(f"runs: {store} (each run: run.json, metrics.jsonl, checkpoints/, tensorboard/, "
          f"artifacts/ with the analyzer reports/, rendered samples/ and confusion_matrix.json)")
    workflow = results.runs[0].info.get("workflow")
    print(f"next: kernel report --workflow {workflow} -o report.html, kernel dashboard, "
          f"or tensorboard --logdir {store}")


def folder_name(name: str) -> str:
    """A workflow's name as one safe folder name: no separators, no '..', not empty."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return safe or "workflow"


def analyze_cmd(args):
    from ..artifacts import workspace, write_reports
    from ..console import show_steps, step

    show_steps(True)
    plan = _plan(args)
    folder = args.output or workspace() / "analysis" / folder_name(plan.workflow.name)
    step(f"running the analyzers into {folder}")
    reports = write_reports(plan, folder)
    from ..console import console as make_console

    console = make_console()
    for name, report in reports:
        console.print(f"[bold]{report.title}[/bold] ({name})")
        for key, value in report.values.items():
            console.print(f"  {key}: {value}", highlight=False)
        try:
            options = report.set_options()
        except TypeError as exc:  # the analyzer's bug, not the user's: the other reports still print
            print(f"kernel: warning: analyzer {name} suggests a value a workflow cannot hold ({exc})",
                  file=sys.stderr)
            options = []
        for option in options:  # printed whole: each can be pasted after `kernel run FILE`
            console.print(f"  adopt: {option}", highlight=False, soft_wrap=True)
    console.print(f"reports written to {folder}")
    return 0


def render_cmd(args):
    from ..artifacts import render_sample, workspace
    from ..errors import KernelError
    from pathlib import Path

    plan = _plan(args)
    if args.split not in plan.data.splits:
        raise KernelError(f"--split {args.split!r}: the splits are {', '.join(plan.data.splits)}")
    size = len(plan.data.splits[args.split])
    if not 0 <= args.index < size:
        raise KernelError(f"--index {args.index} is out of range: the {args.split} split has {size} samples")
    folder = Path(args.output or workspace() / "renders" / folder_name(plan.workflow.name))
    folder.mkdir(parents=True, exist_ok=True)
    for role, (name, media, _) in render_sample(plan, args.index, args.split).items():
        path = media.save(folder / f"{args.split}_{args.index}_{role}")  # the suffix is the media's own
        print(f"{role}: {path} (renderer {name})")
    return 0
