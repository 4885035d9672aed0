"""One writer per run: an OS file lock on ``<run>/.lock``, held by the process that trains the run.

The operating system releases the lock when that process dies, however it dies, so a lock never
outlives its holder and no stale-lock clean-up is needed. The lock also tells who trains a run:
:func:`holder` reads the holding process from the kernel's own lock table (``/proc/locks`` on
Linux), not from a file anyone could write, so the dashboard signals only a process that really
holds the run's lock.
"""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from .errors import KernelError

LOCK_NAME = ".lock"


class RunLocked(KernelError):
    """Another process trains this run."""


class RunLock:
    """``with RunLock(run_dir): ...`` holds the run's lock; a second holder gets :class:`RunLocked`."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd = None

    def acquire(self) -> "RunLock":
        import fcntl

        # O_NOFOLLOW and the checks after it: a run folder may come from someone else, and a planted
        # `.lock` link must neither be locked in place of the run nor have its target written
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise KernelError(f"cannot lock run {self.path.parent.name}: {self.path}: {exc.strerror}"
                              + (" (a link: remove it and try again)" if self.path.is_symlink() else "")) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise KernelError(f"{self.path} is not a plain file (a link?); remove it and try again")
            for attempt in range(20):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # a reader elsewhere may be probing the lock for an instant (is_locked without
                    # /proc/locks): only a holder that stays, or an exclusive one, means another writer
                    if _exclusive_holder(self.path) is not None or attempt == 19:
                        pid = holder(self.path.parent)
                        who = f"process {pid}" if pid else "another process"
                        raise RunLocked(f"run {self.path.parent.name} is being trained by {who}; wait for it "
                                        "to end, or stop it (Ctrl-C there, or the dashboard's stop button)") from None
                    time.sleep(0.025)
        except BaseException:
            os.close(fd)  # never keep a descriptor (and with it the lock) after a failure
            raise
        try:  # for people reading the folder; holder() does not trust it, so a full disk is no failure
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _lock_table() -> str | None:
    try:
        return Path("/proc/locks").read_text()
    except OSError:
        return None


def _exclusive_holder(path: Path, table: str | None = None) -> int | None:
    """The PID holding an exclusive flock on ``path`` by ``/proc/locks`` (``table``: already read);
    None if none or unknown."""
    table = table if table is not None else _lock_table()
    if table is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have a "->" field)
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if int(inode) == st.st_ino and (int(major, 16), int(minor, 16)) == (os.major(st.st_dev), os.minor(st.st_dev)):
                return int(fields[4])
        except ValueError:
            continue
    return None


def _own_lock_file(path: Path) -> bool:
    """Whether ``path`` is a run's own lock file: a plain file with one name, in a run folder that is
    no link. A planted link (or hard link) to another program's lock file would otherwise make that
    program's process look like the run's trainer."""
    try:
        folder, st = os.lstat(path.parent), os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(folder.st_mode) and stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def is_locked(run_dir) -> bool:
    """Whether some process holds the run's lock now.

    On Linux this reads ``/proc/locks`` and takes no lock itself, so asking never makes a writer's
    acquire fail; elsewhere it probes with a shared lock for an instant.
    """
    import fcntl

    path = Path(run_dir) / LOCK_NAME
    if not _own_lock_file(path):
        return False
    table = _lock_table()
    if table is not None:
        return _exclusive_holder(path, table) is not None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock taken when the run was free
    return False


def holder(run_dir) -> int | None:
    """The PID of the process holding the run's lock, or None when no process holds it.

    On Linux the PID comes from ``/proc/locks`` (matched by the lock file's device and inode),
    which only the OS writes. Elsewhere it is the PID the holder wrote into the file, and only
    while the file is really locked.
    """
    path = Path(run_dir) / LOCK_NAME
    if not _own_lock_file(path):
        return None
    table = _lock_table()
    if table is not None:
        return _exclusive_holder(path, table)
    if not is_locked(run_dir):
        return None
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
