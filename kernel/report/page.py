"""The page's data: runs, their curves and colours, groups by dataset, and each group's dataset section.

The same data feeds the offline report (inlined) and the dashboard (``/api/state``); only the way a
file is referenced differs, through ``link(run, relative_path, kind)``: a ``data:`` URI in the
report, a ``/files/...`` URL in the dashboard.
"""
from __future__ import annotations

import base64
import colorsys
import datetime as dt
import json
import math
from pathlib import Path
from typing import Callable

from ..component import MEDIA_SUFFIXES
from ..metric_mode import mode_for
from ..run_reader import as_dict, read_json, settings, short_ids
from ..store import Run

#: Curves' colours: Tableau 10 first (distinct, colour-blind friendly), then golden-angle hues.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
#: Samples shown per group: a grid to look at, not the dataset.
MAX_SAMPLES = 16
#: Keys of a metrics row that are bookkeeping, not metrics.
NOT_METRICS = {"epoch", "step", "time", "elapsed_s"}
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
         ".flac": "audio/flac", ".json": "application/json", ".txt": "text/plain; charset=utf-8"}
#: How the page shows a rendered file, by its suffix (the renderer contract's ``MEDIA_SUFFIXES``):
#: an image, a sound or an HTML fragment is shown without the report knowing the domain it comes from.
MEDIA_KINDS = {suffix: kind for kind, suffixes in MEDIA_SUFFIXES.items() for suffix in suffixes}
#: An HTML rendering is inlined into a sandboxed frame; beyond this size it is left out.
MAX_HTML_BYTES = 512 * 1024

Link = Callable[[Run, str], "str | None"]


def colour(i: int) -> str:
    if i < len(PALETTE):
        return PALETTE[i]
    r, g, b = colorsys.hls_to_rgb(((i - len(PALETTE)) * 0.618034) % 1.0, 0.45, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def mime_type(name: str) -> str | None:
    return _MIME.get(Path(name).suffix.lower())


def artifact_file(run_dir: Path, relative: str) -> Path | None:
    """``artifacts/<relative>`` of a run when it is a file really inside the run's artifacts: only
    the store's own path is resolved, so a linked run folder, a linked ``artifacts`` folder or a
    sample linked to ``~/.ssh/id_rsa`` (a received run folder) leads nowhere."""
    run_dir = Path(run_dir)
    try:
        base = run_dir.parent.resolve() / run_dir.name / "artifacts"
        path = base.joinpath(*relative.split("/")).resolve()
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


def inline_link(run: Run, relative: str) -> str | None:
    """A file of the run's artifacts as a ``data:`` URI (the report must not reference any file)."""
    path = artifact_file(run.dir, relative)
    kind = mime_type(relative)
    if kind is None or path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _number(value):
    """A finite number, or None (a diverged loss logs NaN: a gap in the curve, not a broken page)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def curves(run: Run) -> dict:
    """The run's metric rows as columns: ``{"epoch": [...], "valid/loss": [...], ...}`` (nulls for gaps).

    A resumed run may log an epoch again: the last row for an epoch wins."""
    by_epoch: dict = {}
    for row in run.metrics():
        if not isinstance(row, dict):
            continue
        epoch = _number(row.get("epoch"))
        if epoch is not None:
            by_epoch[epoch] = row
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    keys = []
    for row in rows:
        for key, value in row.items():
            if key not in keys and key not in ("epoch", "time") and _number(value) is not None:
                keys.append(key)
    out = {"epoch": [row["epoch"] for row in rows]}
    for key in keys:
        out[key] = [_number(row.get(key)) for row in rows]
    return out


def display_settings(info: dict) -> dict:
    """The run's settings (:func:`kernel.run_reader.settings`) under the names the page shows: the
    component as ``model``, model parameters by their own name, ``trainer.*`` and ``seed`` as they are."""
    out = {}
    for key, value in settings(info).items():
        if key == "use":
            if value:
                out["model"] = value
        else:
            out[key[len("params."):] if key.startswith("params.") else key] = value
    return out


def summarise(run: Run, index: int, columns: dict) -> dict:
    """One run's row: identity, status, settings, sizes and times (the page picks metrics from curves)."""
    info = run.info
    elapsed = [v for v in columns.get("elapsed_s", []) if v is not None]
    duration = _number(info.get("duration_s"))
    return {
        "id": run.id, "label": str(info.get("model") or run.id), "color": colour(index),
        "workflow": str(info.get("workflow") or ""), "tags": [str(t) for t in info.get("tags") or [] if isinstance(info.get("tags"), list)],
        "fingerprint": str(info.get("fingerprint") or "unknown"), "status": _status(run),
        "reason": info.get("reason"), "created": info.get("created"), "started": info.get("started"),
        "ended": info.get("ended"), "duration_s": duration if duration is not None else (elapsed[-1] if elapsed else None),
        "epochs": _number(info.get("epochs")), "epochs_done": max(_number(info.get("epochs_done")) or 0, len(columns["epoch"])),  # run.json may lag
        "param_count": _number(info.get("param_count")), "monitor": info.get("monitor") if isinstance(info.get("monitor"), str) else None,
        "mode": info.get("mode") if info.get("mode") in ("min", "max") else None,
        "best": as_dict(info.get("best")), "final": as_dict(info.get("final")), "params": display_settings(info),
        "baseline": _baseline(info.get("baseline")),
    }


def _status(run: Run) -> str:
    """The store's own rule (a run marked running whose process is gone reads as interrupted)."""
    try:
        return str(run.status or "unknown")
    except Exception:  # a damaged pid or host field must not break the page
        return str(run.info.get("status") or "unknown")


def _baseline(value) -> dict | None:
    """The majority-class baseline of run.json (``{"metric", "accuracy", "class"}``), type-checked."""
    if not isinstance(value, dict) or _number(value.get("accuracy")) is None or not isinstance(value.get("metric"), str):
        return None
    return {"metric": value["metric"], "accuracy": value["accuracy"], "class": str(value.get("class", ""))}


def best_value(summary: dict, columns: dict, metric: str):
    """(best value, its epoch) of ``metric`` for a run: from its curve, else from run.json's ``best``."""
    values = columns.get(metric) or []
    pairs = [(v, e) for v, e in zip(values, columns.get("epoch", [])) if v is not None]
    if pairs:
        pick = min if mode_for(metric, summary) == "min" else max
        return pick(pairs, key=lambda p: p[0])
    best = summary.get("best") or {}
    if _number(best.get(metric)) is not None:
        return best[metric], best.get("epoch")
    return None, None


def media_kind(name: str) -> str | None:
    return MEDIA_KINDS.get(Path(name).suffix.lower())


def _media(run: Run, name, link: Link) -> dict | None:
    """One rendered file of a sample as the page shows it: ``{"kind", "src"}`` for images and sounds,
    ``{"kind": "html", "html"}`` for HTML (inlined, shown in a sandboxed frame), None for the rest."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    kind = media_kind(name)
    if kind == "html":
        path = artifact_file(run.dir, f"samples/{name}")
        if path is None:
            return None
        try:
            if path.stat().st_size > MAX_HTML_BYTES:
                return None
            return {"kind": "html", "html": path.read_text(encoding="utf-8", errors="replace")}
        except OSError:
            return None
    src = link(run, f"samples/{name}") if kind else None
    return {"kind": kind, "src": src} if src else None


def _samples(run: Run, link: Link) -> list:
    """The run's rendered samples (``artifacts/samples/samples.json``): each role names a file, shown
    by its suffix (:data:`MEDIA_KINDS`), and may have a text (a label) beside it."""
    entries = read_json(run.artifacts / "samples" / "samples.json")
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries[:MAX_SAMPLES]:
        if not isinstance(entry, dict):
            continue
        item = {"index": entry.get("index"), "split": entry.get("split"), "media": {}}
        for role in ("input", "target", "prediction"):
            media = _media(run, entry.get(role), link)
            if media:
                item["media"][role] = media
            item[role] = media.get("src") if media else None
            text = entry.get(f"{role}_text")
            item[f"{role}_text"] = str(text) if text is not None else None
        out.append(item)
    return out


def _reports(run: Run, link: Link) -> list:
    folder = run.artifacts / "reports"
    try:
        files = sorted(folder.glob("*.json"))
    except OSError:
        return []
    out = []
    for path in files:
        report = read_json(path)
        if not isinstance(report, dict):
            continue
        figure = path.with_suffix(".png")
        out.append({"name": path.stem, "title": str(report.get("title") or path.stem),
                    "values": report.get("values") if isinstance(report.get("values"), dict) else {},
                    "table": report.get("table") if isinstance(report.get("table"), list) else None,
                    "suggestions": report.get("suggestions") if isinstance(report.get("suggestions"), dict) else {},
                    "figure": link(run, f"reports/{figure.name}") if figure.is_file() else None})
    return out


def _confusion(run: Run) -> dict | None:
    data = read_json(run.artifacts / "confusion_matrix.json")
    if not isinstance(data, dict) or not isinstance(data.get("matrix"), list):
        return None
    matrix = data["matrix"]
    classes = data.get("classes") or [str(i) for i in range(len(matrix))]
    if not all(isinstance(row, list) for row in matrix):
        return None
    return {"run": run.id, "classes": [str(c) for c in classes], "matrix": matrix}


def group_runs(runs: list[Run], summaries: dict, all_curves: dict, metric: str | None, link: Link) -> list:
    """Runs by dataset fingerprint (runs on different data are not compared), each with its dataset section."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(summaries[run.id]["fingerprint"], []).append(run)
    out = []
    for key, members in groups.items():
        monitors = [summaries[r.id]["monitor"] for r in members if summaries[r.id]["monitor"]]
        chosen = metric or (max(set(monitors), key=monitors.count) if monitors else None)
        if chosen is None:  # no monitor recorded: the first validation metric, else any metric
            keys = [k for r in members for k in all_curves[r.id] if k not in NOT_METRICS]
            chosen = next((k for k in keys if k.startswith("valid/")), keys[0] if keys else None)
        ranked = []
        for r in members:
            value, _ = best_value(summaries[r.id], all_curves[r.id], chosen) if chosen else (None, None)
            if value is not None:
                ranked.append((value, r))
        mode = mode_for(chosen, summaries[members[-1].id])
        ranked.sort(key=lambda p: p[0], reverse=(mode == "max"))
        best = ranked[0][1] if ranked else None
        # the dataset section: the best run's files first, since its samples carry predictions
        order = ([best] if best else []) + [r for r in reversed(members) if r is not best]
        reports = next((rep for rep in (_reports(r, link) for r in order) if rep), [])
        samples = next(((r.id, s) for r, s in ((r, _samples(r, link)) for r in order) if s), (None, []))
        confusion = _confusion(best) if best else None
        workflows = sorted({summaries[r.id]["workflow"] for r in members})
        out.append({"key": key, "fingerprint": key, "metric": chosen, "mode": mode, "workflows": workflows,
                    "runs": [r.id for r in members], "best_run": best.id if best else None,
                    "newest": max(str(summaries[r.id]["created"] or "") for r in members),
                    "dataset": {"reports": reports, "samples": samples[1], "samples_run": samples[0],
                                "confusion": confusion}})
    out.sort(key=lambda g: g["newest"], reverse=True)
    return out


def build_page(runs: list[Run], metric: str | None = None, link: Link = inline_link,
               title: str | None = None, live: bool = False) -> dict:
    """Everything the page shows, as JSON-ready data."""
    all_curves = {run.id: curves(run) for run in runs}
    summaries = {run.id: summarise(run, i, all_curves[run.id]) for i, run in enumerate(runs)}
    labels = [s["label"] for s in summaries.values()]
    shorts = short_ids([run.id for run in runs])
    for s in summaries.values():  # the same model trained twice: tell the runs apart by id
        s["short_id"] = shorts[s["id"]]
        if labels.count(s["label"]) > 1:
            s["label"] = f"{s['label']} ({s['id'][-4:]})"
    confusions = {run.id: c for run, c in ((run, _confusion(run)) for run in runs) if c}
    metrics = sorted({k for columns in all_curves.values() for k in columns if k not in NOT_METRICS})
    workflows = sorted({s["workflow"] for s in summaries.values() if s["workflow"]})
    return {
        "title": title or ("kernel report: " + ", ".join(workflows) if workflows else "kernel report"),
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "live": live, "metric": metric,
        "runs": [summaries[r.id] for r in runs],
        "curves": all_curves,
        # which way each metric is better, by the kernel's one rule (the page has no word list of its own)
        "modes": {k: mode_for(k) for k in metrics},
        "confusions": confusions,
        "groups": group_runs(runs, summaries, all_curves, metric, link),
    }


def finite(value):
    """``value`` with NaN and infinities replaced by None: JSON has no NaN, and browsers refuse it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def to_json(data) -> str:
    return json.dumps(finite(data), separators=(",", ":"), default=str, allow_nan=False)


def to_script_json(data) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<`` can close the element."""
    return to_json(data).replace("<", "\\u003c")
