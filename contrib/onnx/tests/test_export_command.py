"""plugin-onnx on a small real run (kernel.synthetic, an MLP): each exporter's file verified and recorded,
a deliberately broken export refused, an operator without a translation named with its module,
kernel predict on .npy arrays without torch, and the bad inputs of the issue."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKFLOW = """
name = "tiny"
seed = 0
[dataset]
use = "kernel.synthetic"
params = { num_samples = 256, shape = [12], num_classes = 3 }
split = { valid = 0.25 }
[[models]]
use = "kernel.mlp"
[trainer]
use = "kernel.supervised"
epochs = 2
batch_size = 32
"""


def kernel_cmd(*args, home, env=None, input=None):
    full = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "KERNEL_HOME": str(home),
            **(env or {})}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=home, env=full,
                          capture_output=True, text=True, timeout=600, input=input)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("onnx-home")
    (home / "tiny.toml").write_text(WORKFLOW)
    proc = kernel_cmd("run", "tiny.toml", "--quiet", home=home)
    assert proc.returncode == 0, proc.stderr
    return home


def run_id(home) -> str:
    runs = json.loads(kernel_cmd("runs", "--json", "--workflow", "tiny", home=home).stdout)
    return [r["id"] for r in runs if not r["id"].endswith("-copy")][0]  # not the checkpoint test's copy


def run_json(home, rid) -> dict:
    return json.loads((home / "runs" / rid / "run.json").read_text())


def test_each_format_is_written_verified_and_recorded(home):
    rid = run_id(home)
    proc = kernel_cmd("export", "--workflow", "tiny", "--format", "onnx", "--format", "torchscript", "--format",
                      "exported_program", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)
    assert [w["format"] for w in written] == ["onnx", "torchscript", "exported_program"]
    for w in written:
        assert Path(w["path"]).is_file() and w["verified"] is True
        assert w["max_abs_error"] <= 1e-4 and w["top1_agreement"] == 1.0 and w["samples"] == 64
    folder = home / "runs" / rid / "artifacts" / "exports"
    assert sorted(p.name for p in folder.iterdir()) == ["mlp.onnx", "mlp.pt2", "mlp.torchscript.pt"]
    recorded = run_json(home, rid)["exports"]
    assert {e["format"] for e in recorded} == {"onnx", "torchscript", "exported_program"}
    listing = kernel_cmd("runs", home=home).stdout
    assert "onnx, torchscript, exported_program" in listing


def test_the_onnx_file_describes_itself(home):
    import onnx

    rid = run_id(home)
    path = home / "runs" / rid / "artifacts" / "exports" / "mlp.onnx"
    if not path.exists():
        assert kernel_cmd("export", rid, home=home).returncode == 0
    model = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["kernel"])
    assert meta["run"] == rid and meta["kernel_version"] and meta["format"] == "onnx"
    assert meta["classes"] == ["class_0", "class_1", "class_2"] and meta["input"]["kind"] == "array"
    assert meta["input"]["shape"] == [12] and meta["inputs"][0]["shape"] == [None, 12]


def test_a_perturbed_export_is_refused_and_kept_aside(home, monkeypatch):
    """The exporter writes a file whose weights are off: verification refuses it, exit 1, the file stays
    as .unverified and the good name is not taken."""
    rid = run_id(home)
    sabotage = home / "sabotage"
    sabotage.mkdir(exist_ok=True)
    (sabotage / "sitecustomize.py").write_text(textwrap.dedent("""
        import onnx, numpy as np
        from onnx import numpy_helper
        import plugin_onnx.exporters as E
        original = E.OnnxExporter.export
        def export(self, model, example, path, metadata=None):
            artifact = original(self, model, example, path, metadata)
            m = onnx.load(str(path))
            w = m.graph.initializer[0]
            w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.5, w.name))
            onnx.save(m, str(path))
            return artifact
        E.OnnxExporter.export = export
    """))
    out = home / "broken"
    proc = kernel_cmd("export", rid, "-o", f"{out}/", home=home,
                      env={"PYTHONPATH": os.pathsep.join([str(sabotage), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refused" in proc.stderr and "FAILED" in proc.stdout
    assert not (out / f"{rid}.onnx").exists() and (out / f"{rid}.onnx.unverified").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    entry = [e for e in run_json(home, rid)["exports"] if e["path"].startswith(str(out))]
    assert entry and entry[0]["verified"] is False and entry[0]["max_abs_error"] > 1e-3


def test_predict_reads_arrays_without_torch(home):
    rid = run_id(home)
    path = home / "runs" / rid / "artifacts" / "exports" / "mlp.onnx"
    if not path.exists():
        assert kernel_cmd("export", rid, home=home).returncode == 0
    import kernel

    loaded = kernel.load(rid, workspace=home)
    samples = loaded.samples("valid", 4)
    for i, (x, _) in enumerate(samples):
        np.save(home / f"x{i}.npy", x.numpy())
    expected = loaded.predict([x for x, _ in samples]).softmax(-1).numpy()
    files = [str(home / f"x{i}.npy") for i in range(4)]
    code = ("import sys, json\n"
            "class NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('torch is blocked in this test')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from kernel.cli import main\n"
            f"code = main(['predict', {str(path)!r}, *{files!r}, '--json', '--top', '3'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=home,
                          env={**os.environ, "KERNEL_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for row, p in zip(out["predictions"], expected):
        best = row["top"][0]
        assert best["index"] == int(p.argmax()) and abs(best["probability"] - float(p.max())) < 1e-4
    assert set(out["timing"]) == {"load_s", "preprocess_ms_per_input", "inference_ms_per_input"}


def test_an_operator_without_translation_is_named_with_its_module(home, tmp_path):
    """A third-party model whose block calls a custom operator that ONNX has no translation for."""
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "acme_ops.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        @torch.library.custom_op("acme::mystery", mutates_args=())
        def mystery(x: torch.Tensor) -> torch.Tensor:
            return x * 2

        @mystery.register_fake
        def _(x):
            return torch.empty_like(x)

        mystery.register_autograd(lambda ctx, grad: grad * 2)

        class Odd(nn.Module):
            def forward(self, x):
                return torch.ops.acme.mystery(x)

        class Net(nn.Module):
            def __init__(self, input_shape=None, num_classes=None):
                super().__init__()
                self.lin = nn.Linear(input_shape[0], num_classes)
                self.odd = Odd()
            def forward(self, x):
                return self.odd(self.lin(x))
    """))
    (home / "odd.toml").write_text(WORKFLOW.replace('name = "tiny"', 'name = "odd"')
                                   .replace('use = "kernel.mlp"', 'use = "acme_ops:Net"')
                                   .replace("epochs = 2", "epochs = 1"))
    env = {"PYTHONPATH": os.pathsep.join([str(helpers), os.environ.get("PYTHONPATH", "")]),
           "KERNEL_ALLOW_IMPORTS": "acme_ops"}
    assert kernel_cmd("run", "odd.toml", "--quiet", home=home, env=env).returncode == 0
    rid = [r["id"] for r in json.loads(kernel_cmd("runs", "--json", home=home).stdout) if r["workflow"] == "odd"][0]
    proc = kernel_cmd("export", rid, "-o", str(tmp_path / "odd.onnx"), home=home, env=env)
    assert proc.returncode == 2
    assert "operator acme::mystery in module odd (Odd)" in proc.stderr
    assert "try --format torchscript or exported_program" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.onnx*")) and not list(tmp_path.glob(".tmp*"))
    # the other formats carry the operator as it is
    proc = kernel_cmd("export", rid, "--format", "exported_program", "-o", str(tmp_path / "odd.pt2"), home=home, env=env)
    assert proc.returncode == 0, proc.stderr


def test_bad_input_is_one_line_and_exit_2(home, tmp_path):
    rid = run_id(home)
    cases = [
        (("export", rid, "--format", "onxx"), "unknown export format 'onxx' (did you mean 'onnx'?)"),
        (("export", "no-such-run"), "no-such-run"),
        (("export", rid, "--samples", "0"), "--samples must be 1 or more"),
        (("export", rid, "--param", "opset=3"), "opset must be between 17 and 23"),
        (("export", rid, "--param", "opset"), "--param 'opset': write KEY=VALUE"),
        (("export", rid, "--param", "opsett=17"), "onnx.onnx: unknown parameter 'opsett' (did you mean 'opset'?)"),
        (("export", rid, "--format", "exported_program", "--param", "strict=maybe"),
         "parameter strict expects bool, not 'maybe'"),
        (("export", rid, "-o", "model.pt"), "-o model.pt: onnx files end in .onnx"),
        (("export", "--workflow", "tinny"), "no runs of workflow 'tinny'"),
        (("export",), "name the runs to export"),
        (("export", rid, "--format", "torchscript", "--quantize", "dynamic"), "add --format onnx"),
        (("predict", str(tmp_path / "missing.onnx"), "x"), "missing.onnx: no such file"),
    ]
    bogus = tmp_path / "bogus.onnx"
    bogus.write_text("not a model")
    cases.append((("predict", str(bogus), "x.npy"), "cannot be loaded as an ONNX model"))
    for args, message in cases:
        proc = kernel_cmd(*args, home=home)
        assert proc.returncode == 2, (args, proc.stderr)
        if "tinny" in args:
            assert "did you mean 'tiny'" in proc.stderr
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_run_without_checkpoint_is_refused(home):
    rid = run_id(home)
    import shutil

    copy = home / "runs" / (rid + "-copy")
    shutil.copytree(home / "runs" / rid, copy)
    info = json.loads((copy / "run.json").read_text())
    info["id"] = copy.name
    (copy / "run.json").write_text(json.dumps(info))
    shutil.rmtree(copy / "checkpoints")
    shutil.rmtree(copy / "artifacts" / "exports", ignore_errors=True)
    proc = kernel_cmd("export", str(copy), home=home)
    assert proc.returncode == 2 and "has no usable checkpoint" in proc.stderr
    assert not (copy / "artifacts" / "exports").exists()


def test_predict_refuses_a_wrong_file_before_predicting(home, tmp_path):
    rid = run_id(home)
    path = home / "runs" / rid / "artifacts" / "exports" / "mlp.onnx"
    if not path.exists():
        assert kernel_cmd("export", rid, home=home).returncode == 0
    good = tmp_path / "good.npy"
    np.save(good, np.zeros(12, dtype=np.float32))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(5, dtype=np.float32))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad, message in ((wrong, "shape [5], and the model takes [12]"), (text, "give .npy files")):
        proc = kernel_cmd("predict", path, good, bad, home=home)
        assert proc.returncode == 2 and message in proc.stderr and str(bad.name) in proc.stderr, proc.stderr
        assert proc.stdout == ""  # nothing printed as if it were a prediction


def test_control_flow_on_values_is_located_and_torchscript_scripts_it(home, tmp_path):
    """A model that branches on a tensor's value: torch.export (ONNX, .pt2) cannot capture it and the
    message points at the line; TorchScript's auto mode sees the tracer's warning and scripts it."""
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "acme_gate.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Gated(nn.Module):
            def __init__(self, input_shape=None, num_classes=None):
                super().__init__()
                self.lin = nn.Linear(input_shape[0], num_classes)

            def forward(self, x):
                out = self.lin(x)
                if out.sum() > 0:
                    return out * 2
                return out
    """))
    (home / "gated.toml").write_text(WORKFLOW.replace('name = "tiny"', 'name = "gated"')
                                     .replace('use = "kernel.mlp"', 'use = "acme_gate:Gated"').replace("epochs = 2", "epochs = 1"))
    env = {"PYTHONPATH": os.pathsep.join([str(helpers), os.environ.get("PYTHONPATH", "")]),
           "KERNEL_ALLOW_IMPORTS": "acme_gate"}
    assert kernel_cmd("run", "gated.toml", "--quiet", home=home, env=env).returncode == 0
    rid = [r["id"] for r in json.loads(kernel_cmd("runs", "--json", home=home).stdout) if r["workflow"] == "gated"][0]
    for fmt in ("onnx", "exported_program"):
        proc = kernel_cmd("export", rid, "--format", fmt, "-o", f"{tmp_path}/", home=home, env=env)
        assert proc.returncode == 2, proc.stderr
        assert f"{fmt} export failed at {helpers / 'acme_gate.py'}:12 (forward)" in proc.stderr
        assert "try --format torchscript" in proc.stderr and "Traceback" not in proc.stderr
    proc = kernel_cmd("export", rid, "--format", "torchscript", "-o", f"{tmp_path}/", "--json", home=home, env=env)
    assert proc.returncode == 0, proc.stderr
    (written,) = json.loads(proc.stdout)
    assert written["method"] == "script" and written["verified"] is True
