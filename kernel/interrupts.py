"""Stopping a whole training process: Ctrl-C (SIGINT) and SIGTERM stop every run of it, not one.

A trainer catches SIGINT/SIGTERM itself to end its run cleanly (last.pt written, run interrupted)
and returns; the runner must still learn that the user asked to stop, whichever trainer it is. The
interpreter writes the number of every signal it handles to a "wakeup" file descriptor, whoever's
Python handler then runs, so :class:`StopSignals` reads them from a pipe between two runs.
SIGTERM is handled as SIGINT is (KeyboardInterrupt) outside the trainer: a process told to stop
while it writes a run's artifacts unwinds instead of vanishing in the middle.
"""
from __future__ import annotations

import os
import signal
import threading

STOPPING = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


class StopSignals:
    """``with StopSignals() as stop: ...; if stop.requested: ...`` (a no-op off the main thread)."""

    def __init__(self):
        self._seen = False
        self._pipe = None
        self._old_wakeup = None
        self._old_term = None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        try:
            self._old_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(read)
            os.close(write)
            return self
        self._pipe = (read, write)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._old_term = signal.signal(signal.SIGTERM, _interrupt)
        return self

    @property
    def requested(self) -> bool:
        """Whether SIGINT or SIGTERM arrived since the block began (even if a trainer handled it)."""
        if self._pipe is not None:
            while True:
                try:
                    data = os.read(self._pipe[0], 512)
                except BlockingIOError:
                    break
                if not data:
                    break
                if any(b in (int(s) for s in STOPPING) for b in data):
                    self._seen = True
        return self._seen

    def __exit__(self, *exc):
        if self._pipe is None:
            return
        self.requested  # noqa: B018 - drain what arrived, for a caller that asks after the block
        signal.set_wakeup_fd(self._old_wakeup if self._old_wakeup is not None else -1)
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
        for fd in self._pipe:
            os.close(fd)
        self._pipe = None
