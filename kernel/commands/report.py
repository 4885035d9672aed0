"""``kernel report`` (one offline HTML file comparing runs) and ``kernel dashboard`` (the same page, live)."""
from __future__ import annotations


def register(cli):
    p = cli.command("report", "kernel.commands.report:report_cmd",
                    help="write one self-contained HTML file comparing runs",
                    description="Write one HTML file that opens offline: curves of every run overlaid, a sortable "
                                "table of runs, parameters against the metric, the dataset's reports and samples, "
                                "each run's confusion matrix. Without RUN or --workflow: the runs of the "
                                "workflow trained last.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids, unique id prefixes or run directories")
    p.add_argument("--workflow", help="every run of this workflow")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("--metric", help="the metric to compare runs by (default: the runs' monitor, e.g. valid/accuracy)")
    p.add_argument("--title", help="the page's title")
    p = cli.command("dashboard", "kernel.commands.report:dashboard_cmd",
                    help="serve a live page of the run store's runs",
                    description="Serve the report's page live from the run store: new epochs appear as runs train. "
                                "Read-only unless --allow-control, which adds stop and resume buttons.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8787, help="port (default: 8787; 0 picks a free one)")
    p.add_argument("--allow-control", action="store_true", help="allow stopping and resuming runs from the page")
    p.add_argument("--metric", help="the metric to compare runs by (default: the runs' monitor)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often the page asks for new epochs (default: 2)")
    p.add_argument("--verbose", action="store_true", help="log every request")


def report_cmd(args):
    from ..report.html import write_report
    from ..run_reader import select_runs
    from ..store import RunStore

    # the runs named and those of --workflow; with neither, those of the workflow trained last
    from ..cli import run_fields

    runs = select_runs(RunStore(), args.runs, args.workflow, newest="workflow", fields=run_fields(args))
    out = write_report(runs, args.output, metric=args.metric, title=args.title, catalog=_catalog(args))
    print(f"report of {len(runs)} run{'s' if len(runs) != 1 else ''}: {out.resolve()}")
    return 0


def _catalog(args):
    """The catalog without the plugins `-p no:NAME` turned off: they add no section to the page."""
    from ..catalog import get_catalog

    return get_catalog(tuple(getattr(args, "disabled", ())))


def dashboard_cmd(args):
    import errno

    from ..artifacts import workspace
    from ..errors import KernelError
    from ..report.server import make_server

    if not 0 <= args.port <= 65535:
        raise KernelError(f"--port {args.port}: choose a port between 1 and 65535 (0 picks a free one)")
    if not 0.1 <= args.interval <= 3600:
        raise KernelError(f"--interval {args.interval}: choose between 0.1 and 3600 seconds")
    try:
        server = make_server(workspace(), args.host, args.port, args.allow_control, args.metric,
                             interval_ms=int(args.interval * 1000), quiet=not args.verbose, catalog=_catalog(args))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise KernelError(f"port {args.port} on {args.host} is in use; choose another with --port "
                              "(0 picks a free one)") from exc
        raise KernelError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    mode = "stop and resume allowed" if args.allow_control else "read-only"
    print(f"dashboard of {workspace() / 'runs'} at http://{shown}:{port}/ ({mode}; Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
