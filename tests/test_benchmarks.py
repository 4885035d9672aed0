"""Every benchmark still runs: each script, shrunk to a few samples, prints its table.

Nothing here judges speed (these machines are shared and noisy; docs/benchmarks.md holds the
measured ratios). A benchmark that no longer runs is found here, not when someone next measures.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script, tiny arguments, a line its table always prints
CASES = [
    ("startup.py", ["--repeat", "1"], "kernel list"),
    ("overhead.py", ["--epochs", "2", "--rounds", "1", "--samples", "500", "--features", "16"],
     "kernel.supervised, progress on"),
    ("vision_pipeline.py", ["--images", "64", "--rounds", "1"], "vision.ImageFolder"),
    ("audio_pipeline.py", ["--clips", "12", "--repeats", "1"], "by hand, cached resampler"),
    ("text_pipeline.py", ["--copies", "1", "--repeats", "1"], "target: ratio >= 0.95"),
    ("dashboard.py", ["--runs", "6", "--epochs", "3", "--repeat", "1"], "GET /api/state over HTTP"),
    ("tuning.py", ["--trials", "3", "--seeds", "0", "--epochs", "2", "--samples", "200", "--overhead-trials", "2",
                   "--rounds", "1"], "target (overhead): ratio <= 1.05"),
    ("explain.py", ["--models", "vision.simple_cnn", "--batches", "4", "--steps", "5", "--reps", "1", "--memory-batches"],
     "Captum by hand, plugin's internal batch"),
    ("export.py", ["--vision", "simple_cnn", "--text", "text.cnn", "--audio", "audio.m5", "--epochs", "1",
                   "--short-audio", "--reps", "1", "--min-time", "0.01", "--predict-repeat", "1",
                   "--predict-inputs", "4"], "target (accuracy): int8 within 1 point"),
    ("fused_ops.py", ["--no-compile", "--reps", "1", "--min-time", "0.01", "--images", "256"],
     "target: cross-entropy fwd+bwd >= 1.5x eager"),
    ("ddp.py", ["--samples", "320", "--features", "16", "--hidden", "32", "--layers", "1", "--batch-size", "32",
                "--epochs", "2", "--rounds", "1", "--comm-steps", "2"], "target: kernel DDP <= 1.05x hand-written DDP"),
]


def test_every_benchmark_is_listed_here():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert {name for name, _, _ in CASES} == scripts  # _rates.py: what they share


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expected", CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_and_prints_its_table(script, args, expected, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=tmp_path,
                          env={**os.environ, "KERNEL_HOME": str(tmp_path)}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout, proc.stdout
    assert "NO" not in proc.stdout.split()  # overhead: both loops end with the same weights
