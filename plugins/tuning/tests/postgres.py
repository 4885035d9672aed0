"""A real, throw-away PostgreSQL server for the tests: ``with postgres_server() as server: server.url``.

The server runs from Debian's binaries (``/usr/lib/postgresql/<version>/bin``, or ``initdb`` on PATH)
in a fresh temporary data directory, as a non-root user (PostgreSQL refuses to run as root: when the
tests run as root, the server runs as the ``postgres`` system user), listening on 127.0.0.1 on a free
port, with its unix sockets in the temporary directory and trust authentication. Leaving the block
stops it (``pg_ctl stop -m fast``) and removes the directory, whatever happened inside.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("initdb", "pg_ctl", "postgres")


class Unavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed here (the message says what was looked for)."""


@dataclass(frozen=True)
class Server:
    url: str          # postgresql://USER@127.0.0.1:PORT/DB
    user: str         # the database superuser (the OS user that ran initdb)
    port: int
    database: str
    bindir: Path
    datadir: Path
    log: Path

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _version(path: Path) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in TOOLS):
            return folder
    raise Unavailable("PostgreSQL is not installed: no initdb, pg_ctl and postgres in "
                      "/usr/lib/postgresql/*/bin or on PATH (`bash .ci/install-postgres` installs it)")


def _server_user() -> tuple[str, list[str], int | None, int | None]:
    """(user name, command prefix that runs as it, uid, gid to own the files; None: ourselves)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            prefix = ["runuser", "-u", name, "--"]
        elif shutil.which("setpriv"):
            prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
        else:
            raise Unavailable("running as root, and neither runuser nor setpriv is there to start "
                              "PostgreSQL as a non-root user")
        return name, prefix, entry.pw_uid, entry.pw_gid
    raise Unavailable("running as root, and there is no `postgres` (or `nobody`) user to run PostgreSQL as")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict:
    """Our environment without libpq's PG* variables (they would redirect the tools)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(cmd: list, *, timeout: float = 120, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env(),
                          cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def postgres_server(database: str = "kernel_tests"):
    """Start a server, create ``database``, yield a :class:`Server`; stop and delete it at the end."""
    bindir = find_bindir()
    user, as_user, uid, gid = _server_user()
    # Not pytest's tmp_path: that lives under a 0700 folder of ours, which the server user cannot
    # enter. mkdtemp's folder is private to its owner, and we hand it to the server user.
    root = Path(tempfile.mkdtemp(prefix="kernel-pg-"))
    datadir, sockets, log = root / "data", root / "sockets", root / "server.log"
    started = False
    try:
        sockets.mkdir()
        if uid is not None:
            for path in (root, sockets):
                os.chown(path, uid, gid)
        _run([*as_user, bindir / "initdb", "-D", datadir, "-U", user, "-A", "trust", "-E", "UTF8",
              "--locale=C", "--no-sync"], what="initdb")
        for attempt in range(5):
            port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
            proc = subprocess.run([*as_user, bindir / "pg_ctl", "-D", datadir, "-l", log, "-o", options,
                                   "-w", "-t", "60", "start"], capture_output=True, text=True,
                                  timeout=90, env=_clean_env(), cwd="/")
            started = True  # pg_ctl may have left a postmaster behind even when it reports a failure
            if proc.returncode == 0:
                break
            in_use = "already in use" in (log.read_text(errors="replace") if log.exists() else "")
            if not in_use or attempt == 4:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed (exit {proc.returncode}):\n{proc.stdout}\n"
                                   f"{proc.stderr}\n--- server log ---\n{text}")
            _stop(as_user, bindir, datadir)
            started = False
        _run([bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
             what="createdb")
        yield Server(url=f"postgresql://{user}@127.0.0.1:{port}/{database}", user=user, port=port,
                     database=database, bindir=bindir, datadir=datadir, log=log)
    finally:
        try:
            if started:
                _stop(as_user, bindir, datadir)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _stop(as_user: list, bindir: Path, datadir: Path) -> None:
    """``pg_ctl stop -m fast``; a server that will not stop is killed (it is ours: its pid is in its
    own postmaster.pid), so that no server outlives the tests."""
    try:
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", datadir, "-m", "fast", "-w", "-t", "30", "stop"],
                       capture_output=True, text=True, timeout=60, env=_clean_env(), cwd="/")
    except subprocess.TimeoutExpired:
        pass
    pidfile = datadir / "postmaster.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 9)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError, IndexError):
            pass
