"""Shared fixtures: the real ``kernel`` command in a subprocess, in a workspace of its own."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def kernel_cmd(*args, cwd=None, env=None, timeout=600, input=None):
    """Run ``python -m kernel.cli ARGS`` (what the console script runs) and return the process."""
    # output into a pipe, as a script gets it: no terminal size inherited from the test runner (pytest-xdist's
    # workers carry COLUMNS), so tables keep whole ids unless a test sets COLUMNS itself
    inherited = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    full_env = {**inherited, **(env or {})}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def helper_module(tmp_path, monkeypatch):
    """``helper_module("mod", SOURCE)``: a module of the test's own (callbacks, models, trainers) that
    this process and its ``kernel`` subprocesses import, and that run files may name
    (``KERNEL_ALLOW_IMPORTS``, as a user who trusts it would allow it). Returns its folder."""
    folder = tmp_path / "helpers"

    def write(name: str, source: str) -> Path:
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
        monkeypatch.setenv("KERNEL_ALLOW_IMPORTS", name)
        return folder
    return write


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace (KERNEL_HOME) used by in-process calls and by `kernel` subprocesses."""
    home = tmp_path / "workspace"
    home.mkdir()
    monkeypatch.setenv("KERNEL_HOME", str(home))
    for name in ("COLUMNS", "LINES"):  # tables as into a pipe (pytest-xdist's workers carry a terminal size)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def cli(workspace):
    """``cli("list", "models")`` runs the real command line in the workspace."""
    def run(*args, env=None, timeout=600):
        return kernel_cmd(*args, cwd=workspace, env={"KERNEL_HOME": str(workspace), **(env or {})},
                          timeout=timeout)
    return run


@pytest.fixture
def write_workflow(tmp_path):
    """Write a workflow TOML file from text and return its path."""
    def write(text: str, name: str = "workflow.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def fake_plugin(tmp_path):
    """Make a plugin distribution visible through a folder on PYTHONPATH (a real ``.dist-info`` with
    ``entry_points.txt``, as pip would write it) and return the environment that sees it."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)

    def make(entry_name: str, module_source: str, dist: str | None = None) -> dict:
        dist = dist or f"ktest-{entry_name}"
        module = f"ktest_{entry_name}_plugin"
        (site / f"{module}.py").write_text(textwrap.dedent(module_source))
        info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[kernel]\n{entry_name} = {module}\n")
        return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return make
