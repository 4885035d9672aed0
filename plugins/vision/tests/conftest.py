"""Fixtures for the vision plugin's tests: a workspace of its own, the real `kernel` command, workflows."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # vision_files and vision_helpers

from vision_helpers import kernel_command  # noqa: E402


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace (KERNEL_HOME) and torch hub folder, for in-process calls and subprocesses."""
    home = tmp_path / "workspace"
    home.mkdir()
    monkeypatch.setenv("KERNEL_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # never the user's weights cache
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def cli(workspace):
    """``cli("run", "wf.toml")``: the real command line, in the workspace; returns the finished process."""
    def run(*args, timeout=600):
        env = {**os.environ, "KERNEL_HOME": str(workspace), "COLUMNS": "200"}
        return subprocess.run([*kernel_command(), *map(str, args)], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run

