"""Runs side by side: the settings that differ, best and final metrics, epochs, time, size; curves overlaid.

Runs are :class:`kernel.store.Run` objects (or their run.json dicts), read and chosen by
:mod:`kernel.run_reader`; it needs no torch. A table shows the key columns (:func:`key_columns`) so
that it reads in 100 terminal columns; ``--wide`` shows every column, ``--json``/``--csv`` give all.
"""
from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

from .errors import KernelError
from .metric_mode import mode_for
from .run_reader import differing, settings

FIXED = ["id", "model", "status", "epochs", "time_s", "params"]
#: Columns a table shows by default besides the metric: the run, what it is, how far it got.
KEY_FIXED = ["id", "model", "status", "epochs", "time_s"]
#: Differing settings shown by default (the first ones; ``--wide`` shows all).
KEY_SETTINGS = 3


def _info(run) -> dict:
    """run.json of a Run (its status as the store reads it: a dead process reads as interrupted) or a dict."""
    if isinstance(run, dict):
        return run
    return {**run.info, "status": run.status}


def monitor_of(infos: list[dict]) -> str | None:
    """The metric the runs monitor (the most common one), which the key columns show."""
    monitors = [i.get("monitor") for i in infos if isinstance(i.get("monitor"), str)]
    return max(set(monitors), key=monitors.count) if monitors else None


def compare_rows(runs) -> tuple[list[str], list[dict]]:
    """Every column and one row per run: fixed facts, settings that differ, best and final metrics."""
    infos = [_info(r) for r in runs]
    all_settings = [settings(i) for i in infos]
    differ = differing(all_settings, [i.get("status") for i in infos])
    metrics = sorted({k for i in infos for k in (i.get("best") or {}) if "/" in k})
    if any(m.startswith("valid/") for m in metrics):  # side by side, the validation numbers are the ones that matter
        metrics = [m for m in metrics if m.startswith("valid/")]
    rows = []
    for info, s in zip(infos, all_settings):
        best, final = info.get("best") or {}, info.get("final") or {}
        row = {"id": info["id"], "model": info.get("model"), "status": info.get("status"),
               "epochs": info.get("epochs_done"), "time_s": info.get("duration_s"), "params": info.get("param_count")}
        row.update({k: s.get(k) for k in differ})
        row["best_epoch"] = best.get("epoch")
        row.update({f"best {m}": best.get(m) for m in metrics})
        row.update({f"final {m}": final.get(m) for m in metrics})
        baseline = info.get("baseline")
        row["baseline"] = baseline.get("accuracy") if isinstance(baseline, dict) else None
        rows.append(row)
    columns = FIXED + differ + ["best_epoch"] + [f"best {m}" for m in metrics] + [f"final {m}" for m in metrics]
    if any(r["baseline"] is not None for r in rows):  # classification: the majority-class accuracy to beat
        columns.append("baseline")
    return columns, rows


def key_columns(columns: list[str], runs) -> list[str]:
    """The columns a table shows without ``--wide``: the run, the first differing settings, and the
    best and final value of the monitored metric (and the baseline to beat)."""
    infos = [_info(r) for r in runs]
    monitor = monitor_of(infos)
    metric = [c for c in (f"best {monitor}", f"final {monitor}") if c in columns] if monitor else []
    if not metric:  # no monitor recorded: the first metric's best and final
        metric = [c for c in columns if c.startswith("best ")][:1] + [c for c in columns if c.startswith("final ")][:1]
    fixed = set(FIXED) | {"best_epoch", "baseline"}
    setting_columns = [c for c in columns if c not in fixed and not c.startswith(("best ", "final "))]
    return (KEY_FIXED + setting_columns[:KEY_SETTINGS] + metric
            + (["baseline"] if "baseline" in columns else []))


def key_table(columns: list[str], rows: list[dict], runs, ids: dict | None = None):
    """The default table: key columns under short headers (``hidden``, not ``params.hidden``;
    ``best``, the metric named once in the caption), so that it reads in 100 terminal columns."""
    shown = key_columns(columns, runs)
    labels = {c: c[len("params."):] for c in shown if c.startswith("params.")}
    metrics = {c.split(" ", 1)[1] for c in shown if c.startswith(("best ", "final "))}
    caption = None
    if len(metrics) == 1:
        metric = metrics.pop()
        labels.update({f"best {metric}": "best", f"final {metric}": "final"})
        better = "lower" if mode_for(metric, _common_info(runs, metric)) == "min" else "higher"
        caption = f"best, final: {metric} ({better} is better)"
    return rich_table(shown, rows, ids, labels, caption)


def _common_info(runs, metric: str) -> dict | None:
    """A run.json that monitors ``metric``, whose mode then says which way it is better."""
    return next((i for i in map(_info, runs) if i.get("monitor") == metric), None)


def sort_rows(columns, rows, column: str):
    """Sort by a column (a leading '-' sorts descending); unknown columns name the choices."""
    desc = column.startswith("-")
    name = column.lstrip("-")
    match = [c for c in columns if c == name] or [c for c in columns if c.endswith(name)]
    if not match:
        raise KernelError(f"--sort {column!r}: no such column; columns are: {', '.join(columns)}")
    key = match[0]
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: (isinstance(r[key], str), r[key]), reverse=desc) + missing


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


#: Columns of words, left-aligned; the rest (numbers) right-aligned.
TEXT_COLUMNS = ("id", "model", "status", "status (reason)", "use", "workflow", "monitor", "created", "reason",
                "fingerprint")


def rich_table(columns, rows, ids: dict | None = None, labels: dict | None = None, caption: str | None = None):
    """A table that prints as text too (``print(table)``); ``ids`` maps run ids to what is shown,
    ``labels`` columns to their headers."""
    table = _table_class()(box=None, pad_edge=False, caption=caption, caption_justify="left")
    for c in columns:
        text = c in TEXT_COLUMNS
        # a row is one line: long text is cut (its whole value in --wide, --json), never wrapped
        table.add_column((labels or {}).get(c, c), no_wrap=True, overflow="ellipsis" if c != "id" else "fold",
                         max_width=None if c == "id" or not text else 28,
                         justify="left" if text or c.startswith(("params.", "trainer.")) else "right")
    for r in rows:
        table.add_row(*((ids or {}).get(r.get(c), _cell(r.get(c))) if c == "id" else _cell(r.get(c))
                        for c in columns))
    return table


@functools.lru_cache(maxsize=1)
def _table_class():  # rich is imported when a table is made, not when compare is imported
    from rich.table import Table

    class PrintableTable(Table):
        """A rich Table whose ``str`` is the table as text, as wide as the terminal (or ``COLUMNS``)."""

        def __str__(self):
            import io
            import shutil

            from rich.console import Console

            out = io.StringIO()
            width = shutil.get_terminal_size((100, 24)).columns
            Console(file=out, width=width, highlight=False, soft_wrap=False, color_system=None).print(self)
            return out.getvalue().rstrip("\n")

        __repr__ = __str__

    return PrintableTable


def output_width() -> int | None:
    """The width tables are printed at: the terminal's (or ``COLUMNS``), or None in a file or pipe
    with no ``COLUMNS``, where a table is never wrapped and its ids stay whole (for scripts and grep)."""
    import shutil
    import sys

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def print_table(table):
    """Print a table at :func:`output_width` (unbounded: one line per row, however long)."""
    from rich.console import Console

    Console(width=output_width() or 1000, highlight=False, soft_wrap=False).print(table)


def write_csv(columns, rows, file):
    writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def curve_metrics(histories: list[list[dict]], metric: str | None) -> list[str]:
    if metric:
        return [metric]
    keys = sorted({k for h in histories for row in h for k in row if k.startswith("valid/")})
    return keys or sorted({k for h in histories for row in h for k in row if k.startswith("train/")})


def plot_curves(infos: list[dict], histories: list[list[dict]], path=None, metric: str | None = None):
    """Each metric in its own panel, one line per run; saved as PNG when ``path`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = curve_metrics(histories, metric)
    if not names:
        raise KernelError("the runs have no metrics yet: nothing to plot")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for info, history in zip(infos, histories):
            points = [(row["epoch"], row[name]) for row in history if name in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=f"{info.get('model')} ({info['id'][-4:]})")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def export_curves(infos: list[dict], histories: list[list[dict]], path):
    """Every metric of every epoch of every run, one value a line: run, model, epoch, metric, value."""
    with open(Path(path), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "model", "epoch", "metric", "value"])
        for info, history in zip(infos, histories):
            for row in history:
                for key, value in row.items():
                    if "/" in key or key == "lr":
                        writer.writerow([info["id"], info.get("model"), row.get("epoch"), key, value])
