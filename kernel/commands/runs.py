"""``kernel runs``, ``kernel compare`` and ``kernel resume``: the verbs over the run store."""
from __future__ import annotations

import json
import sys


def register(cli):
    p = cli.command("runs", "kernel.commands.runs:runs_cmd", help="list the runs of the workspace",
                    description="List runs (newest first) from the index; --reindex rebuilds it from the run folders.")
    p.add_argument("--workflow", help="only runs of this workflow")
    p.add_argument("--model", help="only runs of this model label")
    p.add_argument("--status", choices=("queued", "running", "interrupted", "failed", "completed"))
    p.add_argument("--fingerprint", help="only runs on this dataset fingerprint")
    p.add_argument("--limit", type=int, help="at most this many runs")
    p.add_argument("--json", action="store_true", help="print run.json of each run as a JSON list")
    p.add_argument("--reindex", action="store_true", help="rebuild runs/index.sqlite from the run folders first")
    p = cli.command("compare", "kernel.commands.runs:compare_cmd", help="compare runs side by side",
                    description="Runs side by side: settings that differ, best and final metrics, epochs, "
                                "time, parameter count. Without RUN, the runs on the newest run's dataset.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes)")
    p.add_argument("--workflow", help="only runs of this workflow (when no RUN is given)")
    p.add_argument("--sort", metavar="COLUMN", help="sort by a column; prefix '-' for descending")
    p.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="PNG", help="write the runs' curves overlaid to this PNG")
    p.add_argument("--metric", help="the metric to plot (default: every valid/ metric)")
    p.add_argument("--export-curves", metavar="CSV", help="write every epoch's metrics of the runs to a CSV")
    p.add_argument("--any-dataset", action="store_true", help="allow runs on different datasets")
    p = cli.command("resume", "kernel.commands.runs:resume_cmd", help="continue an interrupted run",
                    description="Continue a run from its newest good checkpoint, exactly where it stopped.")
    p.add_argument("run", metavar="RUN", help="run id (or a unique prefix)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def runs_cmd(args):
    from ..store import RunStore

    store = RunStore()
    if args.reindex:
        count = store.reindex()
        print(f"indexed {count} run(s) in {store.index_path}", file=sys.stderr)
    infos = store.list(workflow=args.workflow, model=args.model, status=args.status,
                       fingerprint=args.fingerprint, limit=args.limit)
    if args.json:
        print(json.dumps(infos, indent=2, default=str))
        return 0
    if not infos:
        print("no runs yet; `kernel run FILE` trains a workflow's models")
        return 0
    from rich.table import Table

    from ..compare import _cell, print_table

    table = Table(box=None, pad_edge=False)
    for c in ("id", "workflow", "model", "status", "epochs", "monitor", "best", "time_s", "created"):
        table.add_column(c, overflow="fold")
    for i in infos:
        best = (i.get("best") or {}).get(i.get("monitor"))
        epochs = f"{i.get('epochs_done', 0)}/{i.get('epochs') or '?'}"
        status = i["status"] + (f" ({i['reason']})" if i.get("reason") and i["status"] != "completed" else "")
        table.add_row(i["id"], i.get("workflow"), i.get("model"), status, epochs, i.get("monitor") or "",
                      _cell(best), _cell(i.get("duration_s")), i.get("created"))
    print_table(table)
    return 0


def compare_cmd(args):
    from .. import compare as C
    from ..store import Run, RunStore

    store = RunStore()
    infos = C.select_runs(store, args.runs, args.any_dataset, args.workflow)
    columns, rows = C.compare_rows(infos)
    if args.sort:
        rows = C.sort_rows(columns, rows, args.sort)
        order = [r["id"] for r in rows]
        infos = sorted(infos, key=lambda i: order.index(i["id"]))
    if args.plot or args.export_curves:
        histories = [Run(store.root / i["id"], i, store).metrics() for i in infos]
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
    elif not (args.plot or args.export_curves):
        C.print_table(C.rich_table(columns, rows))
    return 0


def resume_cmd(args):
    from ..runner import resume

    result = resume(args.run, quiet=args.quiet)
    print(f"run {result.run_id}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    return 0 if result.status == "completed" else 1
