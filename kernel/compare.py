"""Runs side by side: the settings that differ, best and final metrics, epochs, time, size; curves overlaid.

Works on run.json dicts and metrics.jsonl rows, so it needs no torch.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .errors import KernelError

FIXED = ["id", "model", "status", "epochs", "time_s", "params"]


def select_runs(store, refs=(), any_dataset: bool = False, workflow: str | None = None) -> list[dict]:
    """The runs named (or, with none named, those sharing the newest run's dataset fingerprint)."""
    if refs:
        infos = [store.get(r).info for r in refs]
        for info in infos:
            info["status"] = store.get(info["id"]).status
    else:
        infos = store.list(workflow=workflow)
        if infos and not any_dataset:
            infos = [i for i in infos if i.get("fingerprint") == infos[0].get("fingerprint")]
    if not infos:
        raise KernelError("no runs to compare; train some with `kernel run FILE`")
    prints = {i.get("fingerprint") for i in infos}
    if len(prints) > 1 and not any_dataset:
        raise KernelError(f"these runs used {len(prints)} different datasets (fingerprints "
                          f"{', '.join(sorted(map(str, prints)))}); comparing them is misleading — "
                          f"pass --any-dataset to compare anyway")
    return infos


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value) if isinstance(value, list) else value}


def compare_rows(infos: list[dict]) -> tuple[list[str], list[dict]]:
    """Columns and one row per run: fixed facts, settings that differ, best and final metrics."""
    settings = [{**flatten(i.get("params") or {}, "params"), "use": i.get("use"),
                 **flatten({k: v for k, v in (i.get("defaults") or {}).items()}, "trainer")} for i in infos]
    keys = sorted({k for s in settings for k in s})
    differ = [k for k in keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1] \
        if len(infos) > 1 else []
    metrics = sorted({k for i in infos for k in (i.get("best") or {}) if "/" in k})
    if any(m.startswith("valid/") for m in metrics):  # side by side, the validation numbers are the ones that matter
        metrics = [m for m in metrics if m.startswith("valid/")]
    rows = []
    for info, s in zip(infos, settings):
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


def rich_table(columns, rows):
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for c in columns:
        table.add_column(c, overflow="fold", no_wrap=c == "id",
                         justify="right" if c not in ("id", "model", "status", "use") else "left")
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    return table


def print_table(table):
    """Print a wide table whole: on a terminal it fits the screen, in a file or pipe it never wraps."""
    import sys

    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 1000, highlight=False, soft_wrap=False).print(table)


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
