"""Reading run directories for the report and the dashboard, while trainers may be writing them.

A run directory is read from its files (docs/run-store.md), not from the SQLite index: the files are
the truth, and reading them needs no lock. Anything half-there is tolerated: a directory without
``run.json`` yet (being created) is skipped, a ``metrics.jsonl`` whose last line is cut loses that
line, a missing or unreadable artifact is simply absent from the page.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path


def read_json(path: Path):
    """The JSON in ``path``, or None when it is missing, unreadable or not (yet) valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_metrics(path: Path) -> list[dict]:
    """One dict per complete line of ``metrics.jsonl``; a cut or damaged line is skipped."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    rows = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


#: Files of a run's artifacts the page shows; a change in one (or a report added) re-reads the run.
ARTIFACT_FILES = ("samples/samples.json", "confusion_matrix.json", "reports")


def _stamp(path: Path):
    """What changes when a file is rewritten or appended to: (mtime, size), or None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass
class RunData:
    """One run as the page sees it: its ``run.json``, its metric rows, and where its files are."""

    dir: Path
    info: dict
    metrics: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def artifacts(self) -> Path:
        return self.dir / "artifacts"


def load_run(folder: Path) -> RunData | None:
    """The run in ``folder``, or None when its ``run.json`` is missing or not a run (yet)."""
    folder = Path(folder)
    info = read_json(folder / "run.json")
    if not isinstance(info, dict):
        return None
    info = dict(info)
    info["id"] = folder.name  # the directory is the run's address (files, stop, resume)
    info["status"] = _status(info)
    return RunData(folder, info, read_metrics(folder / "metrics.jsonl"))


def _status(info: dict) -> str:
    """The store's own rule: a run marked running whose process is gone reads as interrupted."""
    try:
        from ..store import effective_status
    except ImportError:  # pragma: no cover - the store ships with the kernel
        return str(info.get("status") or "unknown")
    try:
        return str(effective_status(info) or "unknown")
    except Exception:  # a damaged pid or host field must not break the page
        return str(info.get("status") or "unknown")


class StoreReader:
    """The runs under ``<workspace>/runs``, re-read only when their files change (the dashboard polls)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, tuple] = {}
        self._lock = threading.Lock()
        #: what the last scan saw (files' stamps and statuses): equal signatures, equal pages
        self.signature: tuple = ()

    def scan(self) -> list[RunData]:
        """Every readable run, oldest first (see :func:`run_order`)."""
        try:
            names = sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except OSError:
            names = []
        runs, signature = [], []
        with self._lock:
            seen = set()
            for name in names:
                folder = self.root / name
                key = (_stamp(folder / "run.json"), _stamp(folder / "metrics.jsonl"),
                       *(_stamp(folder / "artifacts" / part) for part in ARTIFACT_FILES))
                if key[0] is None:
                    continue
                seen.add(name)
                cached = self._cache.get(name)
                if cached and cached[0] == key and cached[1].info.get("status") != "running":
                    run = cached[1]
                else:  # a running run's status also depends on its process: re-read it each time
                    run = load_run(folder)
                    if run is None:
                        continue
                    self._cache[name] = (key, run)
                runs.append(run)
                signature.append((name, key, run.info.get("status")))
            for gone in set(self._cache) - seen:
                del self._cache[gone]
            self.signature = tuple(signature)
        runs.sort(key=run_order)
        return runs


def run_order(run: RunData):
    """Oldest first; models of one workflow started in the same second keep the workflow's order."""
    index = run.info.get("model_index")
    return (str(run.info.get("created") or ""), index if isinstance(index, int) else 0, run.id)


def resolve_runs(root: Path, refs: list[str]) -> list[RunData]:
    """Runs named on the command line: an id, a unique id prefix, or a run directory's path."""
    from ..errors import KernelError, did_you_mean

    root = Path(root)
    out = []
    for ref in refs:
        path = Path(ref)
        candidates = [path] if (path / "run.json").is_file() else []
        if not candidates and ref and "/" not in ref and os.sep not in ref:
            exact = root / ref
            candidates = [exact] if (exact / "run.json").is_file() else \
                sorted(p.parent for p in root.glob(f"{ref}*/run.json"))
        if len(candidates) > 1:
            raise KernelError(f"run {ref!r} is ambiguous: it starts {len(candidates)} run ids; give more of it")
        if not candidates:
            known = sorted(p.parent.name for p in root.glob("*/run.json"))
            hint = did_you_mean(ref, known) if known else ""
            raise KernelError(f"no run {ref!r} in {root}{hint}; `kernel runs` lists them")
        run = load_run(candidates[0])
        if run is None:
            raise KernelError(f"cannot read {candidates[0] / 'run.json'}: it is missing or not valid JSON")
        out.append(run)
    return out
