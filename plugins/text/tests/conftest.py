"""Fixtures for the text plugin's tests: tiny files in real formats, and the real ``kernel`` command.

Every file a test reads is written here, in a temporary folder, in the format (and for the official
corpora, the folder layout) that users download; nothing is fetched.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # textfiles: the helpers below

from textfiles import rows, write_csv  # noqa: E402


def kernel_cmd(*args, cwd, env=None, timeout=600):
    """``python -m kernel.cli ARGS`` in a subprocess: what the ``kernel`` console script runs."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    home = tmp_path / "workspace"
    home.mkdir()
    monkeypatch.setenv("KERNEL_HOME", str(home))
    return home


@pytest.fixture
def cli(workspace):
    def run(*args, timeout=600):
        return kernel_cmd(*args, cwd=workspace, env={"KERNEL_HOME": str(workspace)}, timeout=timeout)
    return run


@pytest.fixture
def workflow_file(tmp_path):
    def write(text: str, name: str = "workflow.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write


@pytest.fixture
def reviews_csv(tmp_path):
    return write_csv(tmp_path / "reviews.csv", rows(3))
