"""Startup time of the kernel's light paths, beside a bare interpreter measured in the same run.

Target (issue 2): each at most 0.3 s above `python -c pass`, with every plugin installed.
Run: .venv/bin/python benchmarks/startup.py [--repeat N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = [
    ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
    ("import kernel", [sys.executable, "-c", "import kernel"]),
    ("kernel --help", [sys.executable, "-m", "kernel.cli", "--help"]),
    ("kernel list", [sys.executable, "-m", "kernel.cli", "list"]),
    ("kernel plugins", [sys.executable, "-m", "kernel.cli", "plugins"]),
]


def median_seconds(cmd, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env_note = os.environ.get("KERNEL_DISABLE_PLUGINS") or "none"
    results = [(name, median_seconds(cmd, args.repeat)) for name, cmd in CASES]
    base = results[0][1]
    print(f"startup, median of {args.repeat} runs (disabled plugins: {env_note})")
    print(f"{'command':<28} {'median s':>9} {'above bare s':>13} {'ratio':>7}  target")
    for name, t in results:
        above = t - base
        verdict = "" if name.startswith("python") else ("ok (<= 0.3 s above)" if above <= 0.3 else "OVER")
        print(f"{name:<28} {t:9.3f} {above:13.3f} {t / base:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
