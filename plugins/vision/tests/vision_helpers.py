"""Helpers for the vision plugin's tests (a module of its own name: `conftest` is a name every test folder has)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def kernel_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else the module."""
    script = Path(sys.executable).with_name("kernel")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kernel.cli"]


def prepare(dataset: dict, models=None, **workflow):
    """A built plan (data split, transforms fitted, facts inferred), as `kernel run` makes it."""
    from kernel import prepare as build, Workflow

    return build(Workflow(name=workflow.pop("name", "test"), dataset=dataset,
                          models=models or [{"use": "vision.simple_cnn"}], **workflow))


def run_dirs(workspace: Path) -> list[Path]:
    """Run directories in the workspace's store, whatever their state."""
    runs = workspace / "runs"
    return sorted(p for p in runs.rglob("run.json")) if runs.is_dir() else []


def statuses(workspace: Path) -> list[str]:
    return [json.loads(p.read_text()).get("status") for p in run_dirs(workspace)]
