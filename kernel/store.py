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
import sys
import threading
import time
from pathlib import Path

from .errors import KernelError
from .runlock import LOCK_NAME, is_locked

#: how a run stands; "pruned": a callback stopped it early as not worth finishing (a tuner's pruner)
STATUSES = ("queued", "running", "interrupted", "failed", "completed", "pruned")
_COLUMNS = ("id", "workflow", "model", "status", "fingerprint", "created", "ended", "epochs_done",
            "param_count", "monitor", "best_value", "json")
_INSERT = f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(_COLUMNS))})"
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


_warned: set = set()


def warn(message: str):
    """``kernel: warning: ...`` on stderr, once per process (the dashboard reads the same files often)."""
    if message not in _warned:
        _warned.add(message)
        print(f"kernel: warning: {message}", file=sys.stderr)


def scan_jsonl(path: Path) -> tuple[list[dict], list[tuple[int, str, bool]]]:
    """The objects of a JSON-lines file, and its damaged lines as ``(line number, problem, is_last)``.

    A last line that does not parse is usually one being written (or cut by a kill); a damaged line
    before it, or a line that is not an object (``42``), is damage someone must hear about.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    lines = text.splitlines()
    rows, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((number, f"not JSON ({exc.msg})", last and not text.endswith("\n")))
            continue
        if not isinstance(value, dict):
            problems.append((number, f"a {type(value).__name__}, not a JSON object", False))
            continue
        rows.append(value)
    return rows, problems


def read_jsonl(path: Path) -> list[dict]:
    """Every good line of a JSON-lines file; a last line being written (cut) is skipped quietly,
    any other damaged line is skipped with a warning naming the file and the line."""
    rows, problems = scan_jsonl(path)
    for number, problem, cut in problems:
        if not cut:
            warn(f"{path} line {number} is damaged ({problem}); skipped")
    return rows


class DamagedRunFile(KernelError):
    """A run.json that is not a run: truncated, not JSON, or not an object."""


def read_run_json(path: Path) -> dict:
    """A run.json as a dict, or DamagedRunFile naming the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedRunFile(f"{path} is damaged: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DamagedRunFile(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"truncated or not JSON ({exc.msg} at line {exc.lineno})"
        raise DamagedRunFile(f"{path} is damaged: {what}") from None
    if not isinstance(info, dict):
        raise DamagedRunFile(f"{path} is damaged: a JSON {type(info).__name__}, not an object")
    if not isinstance(info.get("id"), str) or not info["id"]:
        raise DamagedRunFile(f"{path} is damaged: it has no run id")
    for key, kind in (("status", str), ("best", dict), ("final", dict)):
        if key in info and info[key] is not None and not isinstance(info[key], kind):
            raise DamagedRunFile(f"{path} is damaged: {key!r} is a {type(info[key]).__name__}, "
                                 f"not a{'n' if kind is dict else ''} {'object' if kind is dict else 'string'}")
    return info


def clean_temporary_files(run_dir: Path) -> list[Path]:
    """Remove the ``.*.tmp`` files a killed writer left in a run folder and its checkpoints."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        for tmp in folder.glob(".*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):  # a damaged pid is no process
        return False
    except PermissionError:
        return True
    return True


def _process_gone(info: dict, run_dir=None) -> bool:
    """Whether the process that last wrote this run (on this host) has ended."""
    if info.get("host") != socket.gethostname():
        return False  # another machine's process: nothing to ask
    if run_dir is not None and (Path(run_dir) / LOCK_NAME).exists():
        return not is_locked(run_dir)  # the OS lock, released on death, cannot be fooled by a reused PID
    return not _pid_alive(info.get("pid"))


def effective_status(info: dict, run_dir=None) -> str:
    """A run marked running whose process on this host is gone was killed: it reads as interrupted.

    So does a run that finished training but was stopped while its artifacts were written
    (``artifacts: "pending"``): ``kernel resume`` writes them.
    """
    status = info.get("status")
    if status == "running" and _process_gone(info, run_dir):
        return "interrupted"
    if status == "completed" and info.get("artifacts") == "pending":
        return "interrupted" if _process_gone(info, run_dir) else "running"
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
            self._con.execute(_INSERT, _row(info))

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
                rows.append(_row(read_run_json(path)))
            except DamagedRunFile as exc:
                warn(f"{exc}; not indexed (repair or remove {path.parent})")
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM runs")
        con.executemany(_INSERT, rows)
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
            self._index_strays(con)
            sql = "SELECT json FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
            rows = con.execute(sql + " ORDER BY created DESC, id DESC", args).fetchall()
        finally:
            con.close()
        out = []
        for (text,) in rows:
            info = json.loads(text)
            info["status"] = effective_status(info, self.root / str(info.get("id")))
            if status and info["status"] != status:
                continue
            out.append(info)
        return out[:limit] if limit else out

    def _index_strays(self, con):
        """Run folders the index does not know: indexed if readable, else named on stderr (a cheap
        directory listing, so a damaged run.json never vanishes from `kernel runs` silently)."""
        known = {row[0] for row in con.execute("SELECT id FROM runs")}
        for path in self.root.glob("*/run.json"):
            if path.parent.name in known:
                continue
            try:
                info = read_run_json(path)
            except DamagedRunFile as exc:
                warn(f"{exc}; left out (repair or remove {path.parent})")
                continue
            if time.time() - path.stat().st_mtime > 5:  # not one being created right now
                con.execute(_INSERT, _row(info))

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
        """A run by id, unique id prefix, unique id end (the short ids tables show), or directory path."""
        path = Path(ref)
        if (path / "run.json").is_file():
            return Run.open(path, self)
        if (self.root / ref / "run.json").is_file():
            return Run.open(self.root / ref, self)
        if not ref or "/" in ref or os.sep in ref:
            raise KernelError(f"no run {ref!r} in {self.root}; `kernel runs` lists them")
        # a prefix and an end are both ways to name a run: one that names two runs either way is ambiguous
        matches = sorted({p.parent for p in self.root.glob("*/run.json")
                          if p.parent.name.startswith(ref) or p.parent.name.endswith(ref)})
        if len(matches) == 1:
            return Run.open(matches[0], self)
        if len(matches) > 1:
            raise KernelError(f"run {ref!r} is ambiguous: {len(matches)} run ids start or end with it; give more of it")
        raise KernelError(f"no run {ref!r} in {self.root}; `kernel runs` lists them")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "-" for c in str(text)).strip("-") or "run"


def _row(info: dict) -> tuple:
    best = info.get("best") if isinstance(info.get("best"), dict) else {}
    monitor = info.get("monitor") if isinstance(info.get("monitor"), str) else None
    value = best.get(monitor) if monitor else None
    value = value if isinstance(value, (int, float)) else None
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
        return cls(path, read_run_json(path / "run.json"), store)

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def status(self) -> str:
        return effective_status(self.info, self.dir)

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
        elif status in ("interrupted", "failed", "completed", "pruned"):
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


class ReplicaRun(Run):
    """A run as the processes other than rank 0 of a job on several processes see it
    (docs/distributed.md): rank 0's run.json, kept in memory. Only rank 0 writes the run's files."""

    def save(self, info: dict | None = None):
        pass

    def log(self, row: dict):
        pass

    def truncate_metrics(self, epoch: int):
        pass
