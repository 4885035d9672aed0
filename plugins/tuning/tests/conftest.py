"""Fixtures for the tuning plugin's tests: a real PostgreSQL server, workspaces, the real command."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # this folder: postgres (below), the tests' helpers

import postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole session (:class:`postgres.Server`: ``.url`` is
    ``postgresql://USER@127.0.0.1:PORT/DB``), stopped and deleted at the end. Skips the test only when
    PostgreSQL is not installed; any other problem starting it is an error."""
    try:
        postgres.find_bindir()
    except postgres.Unavailable as exc:
        pytest.skip(str(exc))
    with postgres.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    return postgres_server.url
