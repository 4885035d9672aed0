"""The run store as the dashboard polls it: runs re-read only when their files change.

Runs are :class:`kernel.store.Run` objects read by :mod:`kernel.run_reader` (the reader that
``kernel compare`` and ``Results`` use too); this module only adds the cache that makes a poll of an
unchanged store cost a few ``stat`` calls.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ..run_reader import open_run, run_folders, run_order
from ..store import Run

#: Files of a run's artifacts the page shows; a change in one (or a report added) re-reads the run.
ARTIFACT_FILES = ("samples/samples.json", "confusion_matrix.json", "reports")

def _stamp(path: Path):
    """What changes when a file is rewritten or appended to: (mtime, size), or None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class StoreReader:
    """The runs under ``<workspace>/runs``, re-read only when their files change (the dashboard polls)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, tuple] = {}
        self._lock = threading.Lock()
        #: what the last scan saw (files' stamps and statuses): equal signatures, equal pages
        self.signature: tuple = ()

    def scan(self) -> list[Run]:
        """Every readable run, oldest first (see :func:`kernel.run_reader.run_order`)."""
        runs, signature = [], []
        with self._lock:
            seen = set()
            for folder in run_folders(self.root):
                name = folder.name
                key = (_stamp(folder / "run.json"), _stamp(folder / "metrics.jsonl"),
                       *(_stamp(folder / "artifacts" / part) for part in ARTIFACT_FILES))
                if key[0] is None:
                    continue
                seen.add(name)
                cached = self._cache.get(name)
                if cached and cached[0] == key:
                    run = cached[1]
                else:
                    run = open_run(folder)
                    if run is None:
                        continue
                    self._cache[name] = (key, run)
                runs.append(run)
                # a running run's status also depends on its process: Run.status asks each time
                signature.append((name, key, run.status))
            for gone in set(self._cache) - seen:
                del self._cache[gone]
            self.signature = tuple(signature)
        runs.sort(key=run_order)
        return runs
