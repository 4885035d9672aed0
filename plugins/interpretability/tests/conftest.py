"""Fixtures for the interpretability plugin's tests: a workspace of real runs explained by the real
command, shared by the modules that only read it (training and explaining take about half a minute
on 2 cores)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: two small models of the digits, one epoch: different enough to explain differently
TWO_MODELS = """
name = "two-cnns"
seed = 0
[dataset]
use = "vision.digits"
split = { valid = 0.2 }
transforms = [
    { use = "vision.Resize", size = 16 },
    { use = "vision.Normalize", mean = "auto", std = "auto" },
]
[[models]]
name = "cnn_wide"
use = "vision.simple_cnn"
params = { width = 16 }
[[models]]
name = "cnn_narrow"
use = "vision.simple_cnn"
params = { width = 8 }
[trainer]
use = "kernel.supervised"
epochs = 1
batch_size = 64
optimizer = { use = "torch.optim.AdamW", lr = 3e-3 }
"""


def run_kernel(*args, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real ``kernel`` command line in workspace ``home``."""
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=home, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "KERNEL_HOME": str(home)})


@pytest.fixture(scope="session")
def kernel_cli():
    """``kernel_cli(*args, home=workspace)``: the real command line (the tests' modules are imported
    by path, so they take it as a fixture rather than importing this file)."""
    return run_kernel


@pytest.fixture(scope="session")
def explained_workspace(tmp_path_factory) -> Path:
    """A workspace where workflow ``two-cnns`` trained two models for one epoch and
    ``kernel explain --workflow two-cnns --method saliency --samples 4`` explained both. Read it,
    don't change it: copy a run folder to damage it."""
    home = tmp_path_factory.mktemp("explained")
    (home / "two-cnns.toml").write_text(textwrap.dedent(TWO_MODELS))
    proc = run_kernel("run", "two-cnns.toml", "--quiet", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_kernel("explain", "--workflow", "two-cnns", "--method", "saliency", "--samples", "4", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home
