"""``kernel runs``, ``kernel compare`` and ``kernel resume``: the verbs over the run store."""
from __future__ import annotations

import json
import sys


def register(cli):
    p = cli.command("runs", "kernel.commands.runs:runs_cmd", help="list the runs of the workspace",
                    description="List runs (newest first) from the index; --reindex rebuilds it from the run folders.")
    p.add_argument("--workflow", help="only runs of this workflow")
    p.add_argument("--model", help="only runs of this model label")
    p.add_argument("--status", choices=("queued", "running", "interrupted", "failed", "completed", "pruned"))
    p.add_argument("--fingerprint", help="only runs on this dataset fingerprint")
    p.add_argument("--limit", type=int, help="at most this many runs")
    p.add_argument("--json", action="store_true", help="print run.json of each run as a JSON list")
    p.add_argument("--wide", action="store_true", help="every column and whole run ids (default: the key columns)")
    p.add_argument("--reindex", action="store_true", help="rebuild runs/index.sqlite from the run folders first")
    p = cli.command("compare", "kernel.commands.runs:compare_cmd", help="compare runs side by side",
                    description="Runs side by side: settings that differ, best and final metrics, epochs, "
                                "time, parameter count. Without RUN, the runs on the newest run's dataset.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes)")
    p.add_argument("--workflow", help="every run of this workflow (with RUN: added to them)")
    p.add_argument("--sort", metavar="COLUMN", help="sort by a column; prefix '-' for descending")
    p.add_argument("--csv", action="store_true", help="print CSV (every column)")
    p.add_argument("--json", action="store_true", help="print JSON (every column)")
    p.add_argument("--wide", action="store_true", help="every column and whole run ids (default: the key columns)")
    p.add_argument("--plot", metavar="PNG", help="write the runs' curves overlaid to this PNG")
    p.add_argument("--metric", help="the metric to plot (default: every valid/ metric)")
    p.add_argument("--export-curves", metavar="CSV", help="write every epoch's metrics of the runs to a CSV")
    p.add_argument("--any-dataset", action="store_true", help="allow runs on different datasets")
    p = cli.command("resume", "kernel.commands.runs:resume_cmd", help="continue an interrupted run",
                    description="Continue a run from its newest good checkpoint, exactly where it stopped.")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--allow-import", action="append", default=[], metavar="PREFIX",
                   help="let the run's run.json import code under PREFIX (e.g. mypkg); by default it may name "
                        "only installed plugins' components and torch.optim classes (also KERNEL_ALLOW_IMPORTS)")
    p.add_argument("--force", action="store_true",
                   help="resume although the dataset changed, dropping damaged metrics.jsonl lines")
    p.add_argument("--restart", action="store_true", help="train the run again from its first epoch")
    p.add_argument("--keep-checkpoints", action="store_true", default=None,
                   help="keep every checkpoint once the run completes (default: only the slimmed best.pt)")
    from ..launch import add_options

    add_options(p)


def runs_cmd(args):
    from ..store import RunStore

    store = RunStore()
    if args.reindex:
        count = store.reindex()
        print(f"indexed {count} run(s) in {store.index_path}", file=sys.stderr)
    from ..cli import run_fields
    from ..run_reader import has_fields

    fields = run_fields(args)
    infos = store.list(workflow=args.workflow, model=args.model, status=args.status,
                       fingerprint=args.fingerprint, limit=None if fields else args.limit)
    if fields:
        infos = [i for i in infos if has_fields(i, fields)][:args.limit]
    if args.json:
        print(json.dumps(infos, indent=2, default=str))
        return 0
    if not infos:
        print("no runs yet; `kernel run FILE` trains a workflow's models")
        return 0
    from ..compare import _cell, print_table, rich_table
    from ..run_reader import store_short_ids

    from ..compare import output_width

    rows = []
    for i in infos:
        best = (i.get("best") or {}).get(i.get("monitor"))
        reason = i.get("reason") if i["status"] != "completed" else None
        rows.append({"id": i["id"], "workflow": i.get("workflow"), "model": i.get("model"), "status": i["status"],
                     "epochs": f"{i.get('epochs_done', 0)}/{i.get('epochs') or '?'}", "monitor": i.get("monitor") or "",
                     "best": _cell(best), "time_s": _cell(i.get("duration_s")), "created": i.get("created"),
                     "reason": reason, "status (reason)": i["status"] + (f" ({reason})" if reason else ""),
                     "exports": exports_cell(i.get("exports"))})
    exported = ["exports"] if any(r["exports"] for r in rows) else []
    if args.wide:
        columns = ["id", "workflow", "model", "status", "epochs", "monitor", "best", "time_s", "created", "reason",
                   *exported]
        ids = None
        labels = {}
    else:  # what reads in 100 columns: the key columns, the reason cut to fit
        monitors = {r["monitor"] for r in rows}
        if len(monitors) == 1:  # one monitor: named in the header, not on every line
            for r in rows:
                r[f"best {r['monitor']}"] = r["best"]
        columns = ["id", "workflow", "model", "status (reason)", "epochs",
                   f"best {monitors.pop()}" if len(monitors) == 1 else "best", "time_s", *exported]
        labels = {"status (reason)": "status"}
        # on a terminal (or with COLUMNS) ids as their shortest unique end, which compare and report
        # accept; in a file or pipe whole, for scripts
        ids = store_short_ids(store.root, [r["id"] for r in rows]) if output_width() else None
    print_table(rich_table(columns, rows, ids, labels))
    return 0


def exports_cell(exports) -> str:
    """run.json's ``exports`` (written by exporters' commands, e.g. ``kernel export``) in a few words:
    ``onnx, onnx int8, torchscript (unverified)``."""
    if not isinstance(exports, list):
        return ""
    words = []
    for e in exports:
        if isinstance(e, dict):
            word = str(e.get("format")) + (" int8" if e.get("quantized") else "")
            words.append(word if e.get("verified") else f"{word} (unverified)")
    return ", ".join(words)


def compare_cmd(args):
    from .. import compare as C
    from ..run_reader import select_runs, store_short_ids
    from ..store import RunStore

    store = RunStore()
    from ..cli import run_fields

    runs = select_runs(store, args.runs, args.workflow, newest="dataset", any_dataset=args.any_dataset,
                       fields=run_fields(args))
    if not args.runs:
        runs = runs[::-1]  # newest first, as `kernel runs` lists them
    columns, rows = C.compare_rows(runs)
    if args.sort:
        rows = C.sort_rows(columns, rows, args.sort)
        order = [r["id"] for r in rows]
        runs = sorted(runs, key=lambda r: order.index(r.id))
    if args.plot or args.export_curves:
        infos, histories = [r.info for r in runs], [r.metrics() for r in runs]
        if args.plot:
            C.plot_curves(infos, histories, args.plot, args.metric)
            print(f"curves written to {args.plot}", file=sys.stderr)
        if args.export_curves:
            C.export_curves(infos, histories, args.export_curves)
            print(f"curves exported to {args.export_curves}", file=sys.stderr)
    if args.json:
        print(json.dumps({"columns": columns, "rows": rows}, indent=2, default=str))
    elif args.csv:
        C.write_csv(columns, rows, sys.stdout)
    elif args.wide:
        C.print_table(C.rich_table(columns, rows))
    else:  # short ids on a terminal (or with COLUMNS); whole in a file or pipe, for scripts
        ids = store_short_ids(store.root, [r["id"] for r in rows]) if C.output_width() else None
        C.print_table(C.key_table(columns, rows, runs, ids))
    return 0


def resume_cmd(args):
    from .. import distributed, launch

    if launch.wanted(args):
        return launch.run(args)
    with distributed.joined():
        return _resume(args)


def _resume(args):
    from ..runner import resume

    result = resume(args.run, quiet=args.quiet, allow_imports=args.allow_import, force=args.force,
                    restart=args.restart, keep_checkpoints=args.keep_checkpoints)
    print(f"run {result.run_id}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    return 0 if result.status == "completed" else 1
