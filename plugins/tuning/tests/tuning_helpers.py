"""What the tuning plugin's tests share: a small workflow that tunes in seconds, and the real command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: kernel-only, so the plugin's tests need no other plugin: 3 epochs of a small MLP on random data
TINY = textwrap.dedent("""
    name = "tiny"
    seed = 0

    [dataset]
    use = "kernel.synthetic"
    num_samples = 400
    shape = [8]
    num_classes = 3

    [[models]]
    use = "kernel.mlp"
    hidden = 16

    [trainer]
    epochs = 3
    batch_size = 32
    optimizer = { use = "torch.optim.SGD", lr = 0.01 }
    metrics = ["kernel.accuracy"]
    tensorboard = false

    [tuning]
    trials = 6
    heartbeat = 1
    pruner = { use = "median", n_startup_trials = 2 }
    space = { "trainer.optimizer.lr" = { float = [1e-3, 1.0], log = true } }
""")


def kernel(*args, home: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real ``kernel`` command in the workspace ``home``."""
    script = Path(sys.executable).with_name("kernel")
    return subprocess.run([str(script), *map(str, args)], cwd=home, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "KERNEL_HOME": str(home), "COLUMNS": "200", **(env or {})})


def write(home: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = home / name
    path.write_text(text)
    return path


def runs_of(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "runs").glob("*/run.json"))]
