"""Fixtures for the vision plugin's tests: a workspace of its own, the real `kernel` command, workflows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the formats helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def kernel_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else the module."""
    script = Path(sys.executable).with_name("kernel")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kernel.cli"]


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


@pytest.fixture
def write_workflow(tmp_path):
    def write(text: str, name: str = "workflow.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


def prepare(dataset: dict, models=None, **workflow):
    """A built plan (data split, transforms fitted, facts inferred), as `kernel run` makes it."""
    from kernel.build import prepare as build
    from kernel.workflow import Workflow

    return build(Workflow(name=workflow.pop("name", "test"), dataset=dataset,
                          models=models or [{"use": "vision.simple_cnn"}], **workflow))


def run_dirs(workspace: Path) -> list[Path]:
    """Run directories in the workspace's store, whatever their state."""
    runs = workspace / "runs"
    return sorted(p for p in runs.rglob("run.json")) if runs.is_dir() else []


def statuses(workspace: Path) -> list[str]:
    return [json.loads(p.read_text()).get("status") for p in run_dirs(workspace)]
