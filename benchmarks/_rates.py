"""What the data-path benchmarks share: one timed pass over a loader, and the table of rates.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on the path);
its leading underscore keeps it out of the list of benchmarks.
"""
from __future__ import annotations

import time


def timed_pass(loader) -> tuple[int, float, float]:
    """(samples, wall seconds, cpu seconds) for one pass over a loader of ``(inputs, targets)`` batches."""
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    for _, y in loader:
        count += len(y)
    return count, time.perf_counter() - wall, time.process_time() - cpu


def best_rates(passes: dict, n: int) -> dict:
    """``{path: (per second of CPU time, per second of wall time)}`` from each path's fastest of its
    ``(wall, cpu)`` passes over ``n`` samples."""
    return {name: (n / min(c for _, c in runs), n / min(w for w, _ in runs)) for name, runs in passes.items()}


def print_rates(rates: dict, unit: str, also: str, base: str = "by hand", target: float = 0.95):
    """The rates as a Markdown table, ratios against ``base``; the verdict for the path "plugin" on
    CPU time, and its ratio against the path ``also`` (the fairest hand-written variant)."""
    base_cpu, base_wall = rates[base]
    print(f"| path | {unit}/s (CPU) | ratio (CPU) | {unit}/s (wall) | ratio (wall) |")
    print("|---|---|---|---|---|")
    for name, (cpu, wall) in rates.items():
        print(f"| {name} | {cpu:,.0f} | {cpu / base_cpu:.3f} | {wall:,.0f} | {wall / base_wall:.3f} |")
    ratio = rates["plugin"][0] / base_cpu
    print(f"target: ratio >= {target} -> {'met' if ratio >= target else 'NOT met'} ({ratio:.3f}); "
          f"against {also}: {rates['plugin'][0] / rates[also][0]:.3f}")


def per_call(fn, calls: int) -> tuple[float, float]:
    """(wall seconds, cpu seconds) per call of ``fn``, from ``calls`` calls in a row."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls
