"""Startup time of the kernel's light paths, beside a bare interpreter measured in the same run.

Target (issue 2): each at most 0.3 s above `python -c pass`, with every plugin installed.
Two clocks per command: the CPU time of the child process (user + system; it does not grow when
other work shares the machine, so the verdict uses it) and the wall time (what a user waits on an
idle machine; shown beside it).
Run: .venv/bin/python benchmarks/startup.py [--repeat N]
"""
from __future__ import annotations

import argparse
import os
import resource
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_seconds(cmd, repeat: int) -> tuple[float, float]:
    """Median (cpu, wall) seconds of ``cmd``."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = _children_cpu(), time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append(time.perf_counter() - w0)
        cpu.append(_children_cpu() - c0)
    return statistics.median(cpu), statistics.median(wall)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env_note = os.environ.get("KERNEL_DISABLE_PLUGINS") or "none"
    results = [(name, *median_seconds(cmd, args.repeat)) for name, cmd in CASES]
    _, cpu0, wall0 = results[0]
    print(f"startup, median of {args.repeat} runs (disabled plugins: {env_note}); seconds")
    print(f"{'command':<28} {'cpu':>7} {'above bare':>11} {'wall':>7} {'above bare':>11}  target (cpu)")
    for name, cpu, wall in results:
        above = cpu - cpu0
        verdict = "" if name.startswith("python") else ("ok (<= 0.3 s above)" if above <= 0.3 else "OVER")
        print(f"{name:<28} {cpu:7.3f} {above:11.3f} {wall:7.3f} {wall - wall0:11.3f}  {verdict}")


if __name__ == "__main__":
    main()
