"""The run store: one directory per run, and a SQLite index (WAL) that can always be rebuilt from them.

The format is documented in docs/run-store.md; the report and dashboard read these files directly.
No torch here: listing runs stays cheap.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path

from .errors import KernelError

STATUSES = ("queued", "running", "interrupted", "failed", "completed")
_COLUMNS = ("id", "workflow", "model", "status", "fingerprint", "created", "ended", "epochs_done",
            "param_count", "monitor", "best_value", "json")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, workflow TEXT, model TEXT, status TEXT, "
           "fingerprint TEXT, created TEXT, ended TEXT, epochs_done INTEGER, param_count INTEGER, "
           "monitor TEXT, best_value REAL, json TEXT)")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path: Path, data: bytes):
    """Temporary file in the same folder, fsync, rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line of a JSON-lines file; a last line being written (cut) is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def effective_status(info: dict) -> str:
    """A run marked running whose process on this host is gone was killed: it reads as interrupted."""
    status = info.get("status")
    if status == "running" and info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid")):
        return "interrupted"
    return status


class RunStore:
    """The runs of a workspace: ``<workspace>/runs/<id>/`` and ``runs/index.sqlite``."""

    def __init__(self, workspace=None):
        from .artifacts import workspace as default_workspace

        self.root = Path(workspace or default_workspace()) / "runs"
        self.index_path = self.root / "index.sqlite"
        self._con, self._lock = None, threading.Lock()

    # -- the index ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = not self.index_path.exists()
        con = sqlite3.connect(self.index_path, timeout=60, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA busy_timeout = 60000")
        for attempt in range(50):  # switching to WAL needs a moment alone with the file
            try:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("PRAGMA synchronous = NORMAL")
                con.execute(_SCHEMA)
                break
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))
        if fresh and any(self.root.glob("*/run.json")):
            self._reindex(con)  # a deleted index comes back on its own
        return con

    def index(self, info: dict):
        """Insert or replace one run's row; called whenever its run.json is written."""
        with self._lock:  # a training process keeps one connection, shared by its writer thread
            if self._con is None or not self.index_path.exists():
                self._con = self._connect()
            self._con.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(_COLUMNS))})", _row(info))

    def reindex(self) -> int:
        """Rebuild the index from the run directories; returns the number of runs."""
        con = self._connect()
        try:
            return self._reindex(con)
        finally:
            con.close()

    def _reindex(self, con) -> int:
        rows = []
        for path in sorted(self.root.glob("*/run.json")):
            try:
                rows.append(_row(json.loads(path.read_text(encoding="utf-8"))))
            except (json.JSONDecodeError, OSError, KeyError):
                continue  # a run directory being created, or damaged: not indexed
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM runs")
        con.executemany(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(_COLUMNS))})", rows)
        con.execute("COMMIT")
        return len(rows)

    def list(self, workflow=None, model=None, status=None, fingerprint=None, limit=None) -> list[dict]:
        """run.json of each run in the index, newest first, filtered."""
        where, args = [], []
        for column, value in (("workflow", workflow), ("model", model), ("fingerprint", fingerprint)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        con = self._connect()
        try:
            sql = "SELECT json FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
            rows = con.execute(sql + " ORDER BY created DESC, id DESC", args).fetchall()
        finally:
            con.close()
        out = []
        for (text,) in rows:
            info = json.loads(text)
            info["status"] = effective_status(info)
            if status and info["status"] != status:
                continue
            out.append(info)
        return out[:limit] if limit else out

    # -- runs --------------------------------------------------------------------------------
    def create(self, workflow: str, model: str, **fields) -> "Run":
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        while True:
            run_id = f"{_slug(workflow)}-{_slug(model)}-{stamp}-{secrets.token_hex(2)}"
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        info = {"id": run_id, "workflow": workflow, "model": model, "status": "queued", "reason": None,
                "created": now_iso(), "started": None, "ended": None, "duration_s": None,
                "epochs_done": 0, "best": {}, "final": {}, "tags": [], "pid": os.getpid(),
                "host": socket.gethostname(), **fields}
        run = Run(self.root / run_id, info, self)
        run.save()
        return run

    def get(self, ref: str) -> "Run":
        """A run by id, unique id prefix, or directory path."""
        path = Path(ref)
        if (path / "run.json").is_file():
            return Run.open(path, self)
        if (self.root / ref / "run.json").is_file():
            return Run.open(self.root / ref, self)
        matches = [p.parent for p in self.root.glob(f"{ref}*/run.json")] if ref and "/" not in ref else []
        if len(matches) == 1:
            return Run.open(matches[0], self)
        if len(matches) > 1:
            raise KernelError(f"run {ref!r} is ambiguous: it starts {len(matches)} run ids; give more of it")
        raise KernelError(f"no run {ref!r} in {self.root}; `kernel runs` lists them")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "-" for c in str(text)).strip("-") or "run"


def _row(info: dict) -> tuple:
    best = info.get("best") or {}
    monitor = info.get("monitor")
    value = best.get(monitor) if monitor else None
    return (info["id"], info.get("workflow"), info.get("model"), info.get("status"), info.get("fingerprint"),
            info.get("created"), info.get("ended"), info.get("epochs_done"), info.get("param_count"),
            monitor, value, json.dumps(info, default=str))


class Run:
    """One run's directory: ``run.json``, ``metrics.jsonl``, checkpoints, artifacts, TensorBoard files.

    The trainer receives a Run: it logs metrics, saves checkpoints and fires events through it.
    A callback stops training early with :meth:`request_stop` (a tuner prunes this way).
    """

    def __init__(self, path: Path, info: dict, store: RunStore | None = None):
        self.dir = Path(path)
        self.info = info
        self.store = store or RunStore(self.dir.parent.parent)
        self.events = None  # the run-scoped event dispatch, set by the trainer
        self.callbacks = []  # the workflow's own callbacks, added to the trainer's
        self.state = None  # the trainer's live state while it trains
        self.quiet = False
        self.resuming = False

    @classmethod
    def open(cls, path, store: RunStore | None = None) -> "Run":
        path = Path(path)
        try:
            info = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise KernelError(f"cannot read {path / 'run.json'}: {exc}") from exc
        return cls(path, info, store)

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def status(self) -> str:
        return effective_status(self.info)

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def artifacts(self) -> Path:
        return self.dir / "artifacts"

    def __repr__(self):
        return f"Run({self.id!r}, status={self.status!r})"

    def save(self, info: dict | None = None):
        """Write run.json atomically and update the index (``info``: a copy of ``self.info`` taken earlier)."""
        info = self.info if info is None else info
        write_atomic(self.dir / "run.json", json.dumps(info, indent=2, default=str).encode())
        self.store.index(info)

    def update(self, **fields):
        self.info.update(fields)
        self.save()

    def set_status(self, status: str, reason: str | None = None):
        assert status in STATUSES, status
        fields = {"status": status, "reason": reason}
        if status == "running":
            fields.update(started=self.info.get("started") or now_iso(), pid=os.getpid(), host=socket.gethostname())
        elif status in ("interrupted", "failed", "completed"):
            fields["ended"] = now_iso()
        self.update(**fields)

    # -- metrics -----------------------------------------------------------------------------
    def log(self, row: dict):
        """Append one epoch's metrics to metrics.jsonl (one line, flushed)."""
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def metrics(self) -> list[dict]:
        return read_jsonl(self.dir / "metrics.jsonl")

    def truncate_metrics(self, epoch: int):
        """Keep the lines up to ``epoch``: a resume from an older checkpoint redoes the later epochs."""
        rows = [r for r in self.metrics() if r.get("epoch", 0) <= epoch]
        write_atomic(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())

    # -- events and stopping -----------------------------------------------------------------
    def fire(self, event: str, state):
        if self.events is not None:
            self.events.fire(event, self, state)

    def request_stop(self, reason: str, status: str = "completed"):
        """Ask the trainer to stop after the current batch; the run ends with ``status`` and ``reason``."""
        if self.state is not None and self.state.stop is None:
            self.state.stop = (status, reason)
