"""`import kernel`, `kernel --help`, `kernel list` and `kernel plugins` must not import torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "torchaudio", "numpy", "pydantic", "matplotlib", "captum", "optuna", "onnx")

PROBE = """
import sys, io, contextlib
from kernel.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main({argv!r})
    except SystemExit as exc:  # argparse ends --help this way
        code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("CODE", code, "HEAVY", ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "models"], ["plugins"], ["list", "--json"]])
def test_cli_listing_imports_no_torch(argv):
    code = PROBE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [l for l in proc.stdout.splitlines() if l.startswith("CODE")]
    assert line, proc.stderr
    assert line[0].split("HEAVY")[1].strip() == "", f"kernel {' '.join(argv)} imported: {line[0]}"


def test_import_kernel_imports_no_torch():
    code = "import sys, kernel; kernel.Component; kernel.hookimpl; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_heavy_names_load_on_first_use():
    code = "import sys, kernel; kernel.Workflow; print('torch' in sys.modules, 'pydantic' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "True"], proc.stderr
