"""Where a study lives: Optuna's RDB storage, SQLite in the workspace by default, any database
SQLAlchemy reaches otherwise (PostgreSQL to share one study between machines).

Workers beat a heartbeat into the storage while a trial runs; a trial whose worker has been
silent for two heartbeats is marked failed by the next worker that looks (Optuna's
``fail_stale_trials``), and tried again up to ``retries`` times (``RetryHeartbeatStaleTrialCallback``).
"""
from __future__ import annotations

from pathlib import Path

from kernel import KernelError

SCHEMES = ("sqlite", "postgresql", "mysql")


def default_url(workspace: Path) -> str:
    return f"sqlite:///{(Path(workspace) / 'studies' / 'studies.sqlite3').resolve()}"


def url_problem(url) -> str:
    """What is wrong with a storage URL's form ('' when nothing), without connecting."""
    if not isinstance(url, str) or not url.strip():
        return "expected a database URL such as sqlite:///studies.db or postgresql://user@host/db"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        return f"{url!r} is not a database URL ({exc}); e.g. postgresql://user@host:5432/db"
    scheme = parsed.get_backend_name()
    if scheme not in SCHEMES:
        return f"{scheme!r} is not a database Optuna can share a study in; use {', '.join(SCHEMES)}"
    if scheme != "sqlite" and not parsed.host:
        return f"{shown(url)} names no host; e.g. postgresql://user@127.0.0.1:5432/db"
    if scheme == "sqlite" and not parsed.database:
        return "sqlite:// needs a file: sqlite:///path/to/studies.db (an in-memory study is lost when the worker ends)"
    return ""


def shown(url: str) -> str:
    """The URL as it may be printed or written to a file: no password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the storage URL>"


def open_storage(url: str, heartbeat: int, retries: int, where: str = "--storage"):
    """Optuna's RDB storage at ``url``, with heartbeats; a database that cannot be reached is a
    user's error naming the URL (without its password)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    problem = url_problem(url)
    if problem:
        raise KernelError(f"{where}: {problem}")
    kwargs = {}
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        # several workers on one file: wait for the lock instead of failing at once
        kwargs = {"connect_args": {"timeout": 60}}
    else:
        kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    import warnings

    try:
        with warnings.catch_warnings():
            # heartbeats are marked experimental in Optuna, and have been since 2.8: nothing to act on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=retries)
                              if retries else None)
    except Exception as exc:  # sqlalchemy's OperationalError, a driver's own, a bad path
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KernelError(f"{where}: cannot open the study storage {shown(url)}: {first}") from None
