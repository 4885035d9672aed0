"""Runs as people look at them: the one way the report, the dashboard, ``kernel compare`` and
``Results`` read, choose and tabulate runs.

A run is a :class:`kernel.store.Run`. Here it is read from its directory's files (docs/run-store.md),
not from the SQLite index: the files are the truth, and reading them needs no lock, so runs being
written are fine. A directory whose ``run.json`` is missing or not (yet) a JSON object is left out;
a cut last line of ``metrics.jsonl`` is skipped by :meth:`Run.metrics`.

No torch here: listing and comparing stay cheap.
"""
from __future__ import annotations

import json
import bisect
import os
from pathlib import Path

from .errors import KernelError, did_you_mean
from .store import Run

#: Trainer settings that say where and how fast a run trained, not what was trained.
NOT_SETTINGS = ("device", "num_workers")


def read_json(path: Path):
    """The JSON in ``path``, or None when it is missing, unreadable or not (yet) valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def open_run(folder, store=None) -> Run | None:
    """The run in ``folder``, or None when its ``run.json`` is missing or not a run (yet).

    The folder's name is the run's id here (a copied run.json may say otherwise): it is the run's
    address for files, stop and resume."""
    folder = Path(folder)
    info = read_json(folder / "run.json")
    if not isinstance(info, dict):
        return None
    return Run(folder, {**info, "id": folder.name}, store)


def run_folders(root) -> list[Path]:
    """The run directories under ``root`` (real folders only: a linked one could lead anywhere)."""
    try:
        return sorted(Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def scan_runs(root, store=None) -> list[Run]:
    """Every readable run under ``root``, oldest first (:func:`run_order`)."""
    runs = [run for run in (open_run(folder, store) for folder in run_folders(root)) if run is not None]
    return sorted(runs, key=run_order)


def run_order(run: Run):
    """Oldest first; models of one workflow started in the same second keep the workflow's order."""
    index = run.info.get("model_index")
    return (str(run.info.get("created") or ""), index if isinstance(index, int) else 0, run.id)


def newest_runs(workflow: str, workspace=None) -> list[str]:
    """The id of each model's newest run of ``workflow`` that has weights to load (completed,
    interrupted or pruned), in the workflow's model order: what a command that acts on trained
    models (``kernel explain``, ``kernel export``) takes for ``--workflow NAME``."""
    from .store import RunStore

    store = RunStore(workspace)
    runs = store.list(workflow=workflow)
    if not runs:
        known = sorted({str(r.get("workflow")) for r in store.list()})
        raise KernelError(f"no runs of workflow {workflow!r} in {store.root}{did_you_mean(workflow, known)}")
    newest: dict = {}
    for info in runs:  # newest first: the first of each model with weights
        if info.get("model") not in newest and info.get("status") in ("completed", "interrupted", "pruned"):
            newest[info.get("model")] = info
    if not newest:
        raise KernelError(f"no run of workflow {workflow!r} has finished an epoch; `kernel runs --workflow "
                          f"{workflow}` shows them")
    ordered = sorted(newest.values(), key=lambda i: (i.get("model_index") or 0, str(i.get("model"))))
    return [info["id"] for info in ordered]


def select_runs(store, refs=(), workflow: str | None = None, *, newest: str = "workflow",
                any_dataset: bool = True, fields: dict | None = None) -> list[Run]:
    """The runs a command looks at, oldest first (named runs in the order named when alone).

    - ``refs``: run ids, unique id prefixes or ends, or run directories (:meth:`RunStore.get`);
    - ``workflow``: every run of that workflow (added to the named ones);
    - ``fields``: only runs whose run.json holds these values (``{"study": "lr"}``, from the
      ``--NAME`` options plugins add with ``cli.run_field``);
    - neither: the runs of the newest run's ``"workflow"`` (the report) or ``"dataset"`` fingerprint
      (``kernel compare``), within ``workflow`` when given.
    Unless ``any_dataset``, runs on different datasets are refused: comparing them misleads.
    """
    named = [store.get(str(ref)) for ref in refs]
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    if refs and not workflow and not fields:
        chosen = named
    else:
        runs = scan_runs(store.root, store)
        if not runs:
            raise KernelError(f"no runs in {store.root}; train some first (`kernel run WORKFLOW.toml`), "
                              "or set KERNEL_HOME to the workspace that holds them")
        pool = runs
        if workflow is not None:
            pool = [r for r in runs if r.info.get("workflow") == workflow]
            if not pool:
                known = sorted({str(r.info.get("workflow")) for r in runs})
                raise KernelError(f"no runs of workflow {workflow!r} in {store.root}{did_you_mean(workflow, known)}; "
                                  f"workflows with runs: {', '.join(known)}")
        if fields:
            pool = [r for r in pool if has_fields(r.info, fields)]
            if not pool:
                wanted = ", ".join(f"{k} {v!r}" for k, v in fields.items())
                raise KernelError(f"no runs with {wanted} in {store.root}; `kernel runs --json` shows what runs hold")
        if not refs:
            key = "fingerprint" if newest == "dataset" else "workflow"
            last = pool[-1].info.get(key)
            pool = [r for r in pool if r.info.get(key) == last]
        ids = {r.id for r in pool}
        chosen = sorted(pool + [r for r in named if r.id not in ids], key=run_order)
    if not any_dataset:
        prints = {str(r.info.get("fingerprint")) for r in chosen}
        if len(prints) > 1:
            raise KernelError(f"these runs used {len(prints)} different datasets (fingerprints "
                              f"{', '.join(sorted(prints))}); comparing them is misleading — "
                              f"pass --any-dataset to compare anyway")
    return chosen


def has_fields(info: dict, fields: dict) -> bool:
    """Whether run.json holds each value (compared as text: options arrive as text)."""
    return all(k in info and str(info[k]) == str(v) for k, v in fields.items())


def flatten(value, prefix: str = "", out: dict | None = None) -> dict:
    """Nested settings as dotted keys with scalar values (lists and other values as JSON text)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, (str, int, float, bool)) or value is None:
        out[prefix] = value
    else:
        out[prefix] = json.dumps(value, default=str, sort_keys=True)
    return out


def as_dict(value) -> dict:
    """A field that should be a dict; anything else (a damaged or foreign run.json) reads as empty."""
    return value if isinstance(value, dict) else {}


def settings(info: dict) -> dict:
    """What was trained, flat: the model component (``use``), its parameters (``params.*``), the
    trainer's settings (``trainer.*``) and the seed. Runs differ where these differ."""
    out = {"use": info.get("use")}
    flatten(as_dict(info.get("params")), "params", out)
    flatten({k: v for k, v in as_dict(info.get("defaults")).items() if k not in NOT_SETTINGS}, "trainer", out)
    if "seed" in info:
        out["seed"] = info["seed"]
    return out


def differing(all_settings: list[dict], statuses: list[str] | None = None) -> list[str]:
    """The keys whose values differ between runs, in order. A queued run's parameters are not filled
    in from the data yet (``num_classes``, ...): it takes no part unless every run is queued."""
    pool = all_settings
    if statuses is not None:
        started = [s for s, status in zip(all_settings, statuses) if status != "queued"]
        pool = started or all_settings
    if len(pool) < 2:
        return []
    keys = []
    for s in pool:
        keys += [k for k in s if k not in keys]
    return [k for k in keys if len({json.dumps(s.get(k), default=str, sort_keys=True) for s in pool}) > 1]


def short_ids(ids: list[str], among=None, least: int = 4) -> dict:
    """Each id shortened to its shortest unique end (at least ``least`` characters), keyed by id.

    A run id is ``<workflow>-<model>-<date>-<time>-<random>``: runs compared side by side share the
    workflow and model, often the date and time too, so a unique *prefix* is nearly the whole id.
    The end is what tells them apart (``0357``), and :meth:`RunStore.get` accepts it. It must be
    unique ``among`` every run of the store (default: ``ids``), not only among those shown."""
    among = set(among or ids) | set(ids)
    ends = sorted(i[::-1] for i in among)
    starts = sorted(among)
    out = {}
    for run_id in ids:
        end = run_id[::-1]
        k = bisect.bisect_left(ends, end)
        # the longest end shared with a neighbour in sorted order of reversed ids is the one to exceed
        shared = max((_common(end, ends[j]) for j in (k - 1, k + 1) if 0 <= j < len(ends)), default=0)
        size = max(least, shared + 1)
        # RunStore.get also takes prefixes: an end that starts another id would name two runs
        while size < len(run_id) and _starts_another(starts, run_id[-size:], run_id):
            size += 1
        out[run_id] = run_id[-size:] if size < len(run_id) else run_id
    return out


def store_short_ids(root, ids: list[str]) -> dict:
    """:func:`short_ids` unique among every run of the store at ``root`` (what RunStore.get searches)."""
    return short_ids(ids, among=[p.name for p in run_folders(root)])


def _starts_another(starts: list, text: str, run_id: str) -> bool:
    k = bisect.bisect_left(starts, text)
    return any(starts[j].startswith(text) and starts[j] != run_id for j in range(k, min(k + 2, len(starts))))


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n

