"""plugin-onnx across plugins: every model of the three shipped examples (shortened runs) exported to
ONNX, TorchScript and torch.export and verified; ``kernel predict`` classifying image files, text
lines and audio files in a process that cannot import torch; the normalisation moved into the graph;
int8 files with their accuracy; ``[export]`` at the end of ``kernel run``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

FORMATS = ("onnx", "torchscript", "exported_program")
# every model of each example, one epoch (the audio example with fewer voices)
SHORT = {
    "quickstart": {"trainer.epochs": 1},
    "text_sentiment": {"trainer.epochs": 1},
    "spoken_digits": {"trainer.epochs": 1, "trainer.batch_size": 16, "dataset.params.voices": ["en", "en-us", "en+f3"],
                      "dataset.params.rates": [140, 210], "dataset.params.pitches": [50]},
}
MODELS = {"quickstart": 4, "text_sentiment": 4, "spoken_digits": 2}

# run in a fresh interpreter: torch cannot be imported at all, then `kernel predict`
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, NoTorch())
from kernel.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""


def kernel_cmd(*args, cwd, env=None):
    """The real command line in a subprocess, output into a pipe (no terminal size inherited)."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=cwd,
                          env={**inherited, **(env or {})}, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One workspace with a run of every model of each shortened example: {example: [run ids]}."""
    import kernel

    home = tmp_path_factory.mktemp("export-workspace")
    runs = {}
    for example, overrides in SHORT.items():
        workflow = kernel.Workflow.from_file(ROOT / "examples" / f"{example}.toml").with_overrides(overrides)
        results = workflow.run(workspace=home, quiet=True, artifacts=False)
        runs[example] = [r.id for r in results]
        assert len(runs[example]) == MODELS[example]
    return home, runs


def export(home, *args):
    return kernel_cmd("export", *args, cwd=home, env={"KERNEL_HOME": str(home)})


def predict_without_torch(home, *args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, "predict", *map(str, args)], cwd=home,
                          env={**os.environ, "KERNEL_HOME": str(home)}, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("example", list(SHORT))
def test_every_model_exports_to_every_format_and_passes_verification(trained, example):
    home, runs = trained
    args = [a for f in FORMATS for a in ("--format", f)]
    proc = export(home, *runs[example], *args, "--json")
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)
    assert len(written) == len(runs[example]) * len(FORMATS)
    for w in written:
        assert w["verified"] is True and w["top1_agreement"] == 1.0, w
        assert Path(w["path"]).is_file() and not w["path"].endswith(".unverified")
    for rid in runs[example]:
        recorded = json.loads((home / "runs" / rid / "run.json").read_text())["exports"]
        assert sorted(e["format"] for e in recorded if e["verified"]) == sorted(FORMATS)


def onnx_of(home, rid) -> Path:
    folder = home / "runs" / rid / "artifacts" / "exports"
    found = [p for p in folder.glob("*.onnx") if not p.name.endswith(".int8.onnx")] if folder.is_dir() else []
    if not found:
        assert export(home, rid).returncode == 0
        found = [p for p in folder.glob("*.onnx") if not p.name.endswith(".int8.onnx")]
    return found[0]


def eager_probabilities(loaded, inputs) -> np.ndarray:
    return loaded.predict(inputs).softmax(-1).detach().numpy()


def check_predictions(out: dict, expected: np.ndarray, names: list[str]):
    assert [p["input"] for p in out["predictions"]] == names
    for row, p in zip(out["predictions"], expected):
        best = row["top"][0]
        assert best["index"] == int(p.argmax()), (row, p)
        assert abs(best["probability"] - float(p.max())) < 1e-4


def test_predict_classifies_image_files_without_torch(trained, tmp_path):
    import torch
    from PIL import Image

    import kernel

    home, runs = trained
    rid = runs["quickstart"][0]
    loaded = kernel.load(rid, workspace=home)
    files, decoded = [], []
    for i, (x, _) in enumerate(loaded.samples("valid", 6, raw=True)):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((x[0].numpy() * 255).round().astype(np.uint8), mode="L").save(path)
        files.append(path)
        decoded.append(torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).unsqueeze(0))
    proc = predict_without_torch(home, onnx_of(home, rid), *files, "--json")
    assert proc.returncode == 0, proc.stderr
    check_predictions(json.loads(proc.stdout), eager_probabilities(loaded, decoded), [str(f) for f in files])
    text = predict_without_torch(home, onnx_of(home, rid), *files[:2])
    assert text.returncode == 0 and "ms inference per input" in text.stderr
    assert [line.split(": ")[0] for line in text.stdout.splitlines()] == [str(f) for f in files[:2]]


def test_predict_classifies_text_lines_without_torch(trained, tmp_path):
    import kernel

    home, runs = trained
    for rid in runs["text_sentiment"]:  # every text model: bags, convolutions, a recurrent one, a transformer
        loaded = kernel.load(rid, workspace=home)
        # real reviews, then the shortest texts a graph may have frozen a branch against
        texts = [x for x, _ in loaded.samples("valid", 5, raw=True)] + ["", "bad", "an utterly zxqv film"]
        lines = tmp_path / "reviews.txt"
        lines.write_text("\n".join(t.replace("\n", " ") for t in texts[:5]) + "\n")
        proc = predict_without_torch(home, onnx_of(home, rid), f"@{lines}", texts[6], texts[7], "--json")
        assert proc.returncode == 0, proc.stderr
        names = [f"{lines}:{i + 1}" for i in range(5)] + texts[6:]
        check_predictions(json.loads(proc.stdout), eager_probabilities(loaded, texts[:5] + texts[6:]), names)


def write_wav(path: Path, samples: np.ndarray, rate: int):
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_predict_classifies_audio_files_without_torch(trained, tmp_path):
    import torch

    import kernel

    home, runs = trained
    for rid in runs["spoken_digits"]:
        loaded = kernel.load(rid, workspace=home)
        files, decoded = [], []
        for i, (x, _) in enumerate(loaded.samples("valid", 4, raw=True)):
            path = tmp_path / f"{rid}-{i}.wav"
            write_wav(path, x[0].numpy(), loaded.facts["sample_rate"])
            files.append(path)
            with wave.open(str(path)) as w:  # what the file holds: 16-bit samples
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
            decoded.append(torch.from_numpy(pcm).unsqueeze(0))
        proc = predict_without_torch(home, onnx_of(home, rid), *files, "--json", "--top", "2")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert all(len(p["top"]) == 2 for p in out["predictions"])
        check_predictions(out, eager_probabilities(loaded, decoded), [str(f) for f in files])


def test_predict_refuses_a_file_of_the_wrong_kind(trained, tmp_path):
    home, runs = trained
    image_model = onnx_of(home, runs["quickstart"][0])
    audio_model = onnx_of(home, runs["spoken_digits"][0])
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    clip = tmp_path / "clip.wav"
    write_wav(clip, np.zeros(800, dtype=np.float32), 8000)
    for model, bad in ((image_model, notes), (image_model, clip), (audio_model, notes)):
        proc = kernel_cmd("predict", model, bad, cwd=home, env={"KERNEL_HOME": str(home)})
        assert proc.returncode == 2, proc.stderr
        assert str(bad) in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""


def test_normalisation_in_the_graph(trained, tmp_path):
    """--in-graph: the file takes unnormalised pixels; its metadata no longer lists the step."""
    import onnx

    home, runs = trained
    rid = runs["quickstart"][0]
    out = tmp_path / "in-graph.onnx"
    proc = export(home, rid, "--in-graph", "-o", out)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["kernel"])
    assert meta["in_graph"] == ["normalize"]
    assert [s["step"] for s in meta["preprocessing"]] == ["resize"]
    assert meta["facts"]["normalize"]["mean"]  # still said, for a caller who wants to know
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), mode="L").save(png)
    a = predict_without_torch(home, out, png, "--json")
    b = predict_without_torch(home, onnx_of(home, rid), png, "--json")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    pa, pb = (json.loads(p.stdout)["predictions"][0]["top"][0] for p in (a, b))
    assert pa["index"] == pb["index"] and abs(pa["probability"] - pb["probability"]) < 1e-4


@pytest.mark.parametrize("example, index, mode", [("quickstart", 0, "static"), ("text_sentiment", 3, "dynamic")])
def test_int8_file_with_its_accuracy_measured(trained, example, index, mode):
    """Each mode where it is recommended: static for a convolutional model (simple_cnn), dynamic for
    one made of matrix products (the transformer)."""
    home, runs = trained
    rid = runs[example][index]
    proc = export(home, rid, "--quantize", mode, "--json")
    assert proc.returncode == 0, proc.stderr
    float_file, int8_file = json.loads(proc.stdout)
    assert int8_file["quantized"] == mode and int8_file["path"].endswith(".int8.onnx")
    assert 0 <= int8_file["accuracy"] <= 1 and 0 <= int8_file["float_accuracy"] <= 1
    assert int8_file["accuracy_samples"] > 100
    assert Path(int8_file["path"]).stat().st_size < Path(float_file["path"]).stat().st_size
    listing = kernel_cmd("runs", "--wide", cwd=home, env={"KERNEL_HOME": str(home)}).stdout
    assert "onnx int8" in listing


def test_export_table_exports_each_run_when_kernel_run_ends(tmp_path):
    home = tmp_path / "ws"
    home.mkdir()
    text = (ROOT / "examples" / "quickstart.toml").read_text()
    workflow = tmp_path / "exported.toml"
    workflow.write_text(text + '\n[export]\nformats = ["onnx", "torchscript"]\n')
    proc = kernel_cmd("run", workflow, "--set", "trainer.epochs=1", "--set",
                      'models=[{use = "vision.simple_cnn"}]', "--quiet", cwd=home, env={"KERNEL_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (home / "runs").glob("quickstart-*")
    assert sorted(p.name for p in (run_dir / "artifacts" / "exports").iterdir()) == \
        ["simple_cnn.onnx", "simple_cnn.torchscript.pt"]
    assert "kernel: exported" in proc.stderr
    # a typo in the table is found before anything trains
    workflow.write_text(text + '\n[export]\nformats = ["onx"]\n')
    proc = kernel_cmd("run", workflow, cwd=home, env={"KERNEL_HOME": str(home)})
    assert proc.returncode == 2 and "export.formats[0]" in proc.stderr and "did you mean 'onnx'" in proc.stderr


DOC = (ROOT / "docs" / "export.md").read_text()


def doc_block(first_line: str) -> str:
    """The docs' python block that starts with ``first_line``."""
    import re

    (block,) = [b for b in re.findall(r"^```python\n(.*?)^```", DOC, re.S | re.M) if b.startswith(first_line)]
    return block


def test_a_third_party_exporter_works_with_the_same_verbs(trained, fake_plugin):
    home, runs = trained
    rid = runs["quickstart"][0]
    source = doc_block("# file: acme_exporter.py")  # the docs' worked example, installed as a plugin
    env = {**fake_plugin("acme", source), "KERNEL_HOME": str(home)}
    (Path(env["PYTHONPATH"].split(os.pathsep)[0]) / "acme_exporter.py").write_text(source)
    proc = kernel_cmd("export", rid, "--format", "pickled", "--json", cwd=home, env=env)
    assert proc.returncode == 0, proc.stderr
    (written,) = json.loads(proc.stdout)
    assert written["exporter"] == "acme.pickled" and written["verified"] is True
    assert written["path"].endswith("simple_cnn.pickled.pt")
    proc = kernel_cmd("export", rid, "--format", "pickeld", cwd=home, env=env)
    assert proc.returncode == 2 and "did you mean 'pickled'" in proc.stderr


def test_the_docs_python_example_runs(trained, monkeypatch):
    home, runs = trained
    rid = runs["spoken_digits"][0]
    monkeypatch.setenv("KERNEL_HOME", str(home))
    code = doc_block("import kernel\n\nloaded = kernel.load(").replace("quickstart-simple_cnn-20261204-163349-3928", rid)
    printed = []
    exec(code, {"print": lambda *a: printed.append(a)})
    (path, passed, line), (int8_path, int8_passed, _) = printed
    assert passed is True and str(path).endswith("m5.onnx") and "passed" in line
    assert str(int8_path).endswith("m5.int8.onnx")


def test_raw_images_reach_the_portable_steps_as_the_vision_plugin_reads_them():
    """The verification feeds a dataset's raw images (PIL, arrays, tensors, any pixel type) to the
    portable steps; they must be the pixels the vision plugin's transforms start from."""
    import torch
    from PIL import Image
    from plugin_onnx.export import as_image
    from plugin_vision.images import to_image

    rng = np.random.default_rng(0)
    samples = [Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)),
               Image.fromarray(rng.integers(0, 255, (5, 7), dtype=np.uint8)).convert("P"),
               Image.fromarray(rng.integers(0, 255, (5, 7), dtype=np.uint8)),
               rng.integers(0, 255, (5, 7, 3), dtype=np.uint8), rng.integers(0, 65535, (5, 7), dtype=np.uint16),
               torch.randint(0, 255, (3, 5, 7), dtype=torch.uint8), torch.rand(1, 8, 8),
               rng.random((5, 7)).astype(np.float32)]
    for x in samples:
        expected = to_image(x).numpy()
        got = as_image(x)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-7)


def test_random_augmentations_are_skipped_and_said_so(tmp_path):
    """A workflow's transforms apply to every split, so the eager path flips at random even when
    predicting; the portable path skips the flip, and the verification compares the graphs on the same
    inputs, saying so in the record."""
    import kernel

    home = tmp_path / "ws"
    workflow = kernel.Workflow.from_file(ROOT / "examples" / "quickstart.toml").with_overrides({
        "trainer.epochs": 1, "models": [{"use": "vision.simple_cnn"}],
        "dataset.transforms": [{"use": "vision.Resize", "size": 16}, {"use": "vision.RandomHorizontalFlip"},
                               {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]})
    (run,) = workflow.run(workspace=home, quiet=True, artifacts=False)
    proc = export(home, run.id, "--json")
    assert proc.returncode == 0, proc.stderr
    (written,) = json.loads(proc.stdout)
    assert written["verified"] is True
    assert written["compared"] == "model only (random augmentations skipped: RandomHorizontalFlip)"


def test_files_are_read_as_the_dataset_gives_them_not_as_the_model_takes_them(tmp_path):
    """A Resample transform between the dataset (8 kHz) and the model (4 kHz): the metadata says the file's
    rate and length, predict resamples once, and its scores are eager's."""
    import torch

    import kernel

    home = tmp_path / "ws"
    overrides = {**SHORT["spoken_digits"], "models": [{"use": "audio.spectrogram_cnn", "params": {"n_mels": 32}}],
                 "dataset.transforms": [{"use": "audio.Resample", "orig_freq": 8000, "new_freq": 4000}]}
    workflow = kernel.Workflow.from_file(ROOT / "examples" / "spoken_digits.toml").with_overrides(overrides)
    (run,) = workflow.run(workspace=home, quiet=True, artifacts=False)
    out = tmp_path / "spectrogram_cnn.onnx"
    assert export(home, run.id, "-o", out).returncode == 0
    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["kernel"])
    assert meta["input"]["sample_rate"] == 8000 and meta["input"]["samples"] == 8000
    assert meta["input"]["shape"] == [1, 4000]
    loaded = kernel.load(run.id, workspace=home)
    files, decoded = [], []
    for i, (x, _) in enumerate(loaded.samples("valid", 3, raw=True)):
        path = tmp_path / f"clip{i}.wav"
        write_wav(path, x[0].numpy(), 8000)
        files.append(path)
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        decoded.append(torch.from_numpy(pcm).unsqueeze(0))
    proc = predict_without_torch(home, out, *files, "--json")
    assert proc.returncode == 0, proc.stderr
    check_predictions(json.loads(proc.stdout), eager_probabilities(loaded, decoded), [str(f) for f in files])


def test_a_run_whose_preprocessing_is_not_portable_is_verified_on_one_draw(tmp_path):
    """RandomResizedCrop cannot be described without torch: the file is verified on the run's own torch
    batch, made once for the eager model and the file, and predict refuses raw files, naming it."""
    import kernel

    home = tmp_path / "ws"
    workflow = kernel.Workflow.from_file(ROOT / "examples" / "quickstart.toml").with_overrides({
        "trainer.epochs": 1, "models": [{"use": "vision.simple_cnn"}],
        "dataset.transforms": [{"use": "vision.RandomResizedCrop", "size": 16},
                               {"use": "vision.Normalize", "mean": "auto", "std": "auto"}]})
    (run,) = workflow.run(workspace=home, quiet=True, artifacts=False)
    proc = export(home, run.id, "--json")
    assert proc.returncode == 0, proc.stderr
    (written,) = json.loads(proc.stdout)
    assert written["verified"] is True and written["compared"].startswith("model only (the preprocessing is not portable")
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(png)
    proc = kernel_cmd("predict", written["path"], png, cwd=home, env={"KERNEL_HOME": str(home)})
    assert proc.returncode == 2 and "RandomResizedCrop" in proc.stderr, proc.stderr
