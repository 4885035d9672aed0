"""Server time of the dashboard on a store of 200 runs, beside the least any page must do: read and
parse every run.json and metrics.jsonl (measured in the same run).

Target (issue 5): the page renders in under a second of server time with 200 runs.
Run: .venv/bin/python benchmarks/dashboard.py [--runs 200] [--epochs 30] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from runstore_fixtures import write_run  # noqa: E402  (run directories in the real format)

from kernel.report.html import dashboard_html, report_html  # noqa: E402
from kernel.report.runs import StoreReader  # noqa: E402
from kernel.report.server import Dashboard, make_server  # noqa: E402


def make_store(workspace: Path, runs: int, epochs: int):
    for i in range(runs):
        write_run(workspace / "runs", workflow=f"wf{i % 4}", model=f"m{i % 10}", quality=0.3 + 0.6 * ((i * 37) % 100) / 100,
                  index=i, epochs=epochs, params={"hidden": 16 * (1 + i % 8), "dropout": round(0.05 * (i % 5), 2)},
                  lr=10 ** -(2 + i % 3), fingerprint=f"data{i % 3}", samples=8)


def bare_read(root: Path):
    """The baseline: parse every run.json and every metrics line, nothing else."""
    for folder in root.iterdir():
        if (folder / "run.json").is_file():
            json.loads((folder / "run.json").read_text())
            [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        make_store(workspace, args.runs, args.epochs)
        root = workspace / "runs"

        def page_cold():  # a fresh server: nothing cached
            d = Dashboard(workspace)
            _, etag, data = d.state()
            dashboard_html(data, d.token, etag)

        warm = Dashboard(workspace)
        warm.state()

        def page_warm():  # a server that has seen the store (what a poll or a reload costs)
            _, etag, data = warm.state()
            dashboard_html(data, warm.token, etag)

        epoch = [args.epochs]
        one = next(p for p in root.iterdir() if (p / "metrics.jsonl").is_file())

        def poll_after_epoch():  # a poll while a run trains: one run's curve has grown, the state is rebuilt
            epoch[0] += 1
            with open(one / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"epoch": epoch[0], "valid/accuracy": 0.5, "valid/loss": 1.0}) + "\n")
            warm.state()

        server = make_server(workspace, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"

        def http_page():
            urllib.request.urlopen(url + "/").read()

        def http_state():
            urllib.request.urlopen(url + "/api/state").read()

        runs = StoreReader(root).scan()
        cases = [
            ("parse run.json + metrics (baseline)", lambda: bare_read(root)),
            ("page, cold server", page_cold),
            ("page, warm server", page_warm),
            ("poll after a new epoch", poll_after_epoch),
            ("GET / over HTTP", http_page),
            ("GET /api/state over HTTP", http_state),
            (f"kernel report, {len(runs)} runs", lambda: report_html(StoreReader(root).scan())),
        ]
        results = [(name, median_seconds(fn, args.repeat)) for name, fn in cases]
        state_bytes = len(urllib.request.urlopen(url + "/api/state").read())
        server.shutdown()
    base = results[0][1]
    print(f"dashboard with {args.runs} runs x {args.epochs} epochs, median of {args.repeat} "
          f"(/api/state is {state_bytes / 1e6:.1f} MB)")
    print(f"{'case':<38} {'median s':>9} {'ratio':>7}  target")
    for name, t in results:
        verdict = "" if "baseline" in name or "report" in name else ("ok (< 1 s)" if t < 1.0 else "OVER")
        print(f"{name:<38} {t:9.3f} {t / base:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
