"""plugin-interpretability across plugins: ``kernel explain`` on real runs of the three shipped
examples (shortened) and of a third-party plugin's model, with the pictures looked at; the
randomisation sanity check on the quickstart; a method a third party adds; every bad input a
clear message, exit code 2 and nothing written."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# the three examples, shortened: fewer epochs, fewer or smaller models, fewer voices
SHORT = {
    "quickstart": {"trainer.epochs": 3, "models": [{"name": "simple_cnn", "use": "vision.simple_cnn"}]},
    "text_sentiment": {"trainer.epochs": 1,
                       "models": [{"use": "text.embedding_bag", "params": {"embed_dim": 32}},
                                  {"use": "text.cnn", "params": {"embed_dim": 32, "num_filters": 16}}]},
    "spoken_digits": {"trainer.epochs": 2, "trainer.batch_size": 16, "dataset.params.voices": ["en", "en-us", "en+f3"],
                      "dataset.params.rates": [140, 210],
                      "dataset.params.pitches": [50], "models": [{"use": "audio.m5"}]},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One workspace with a run of each shortened example: {example: [run ids]}."""
    import kernel

    home = tmp_path_factory.mktemp("explain-workspace")
    runs = {}
    for example, overrides in SHORT.items():
        workflow = kernel.Workflow.from_file(ROOT / "examples" / f"{example}.toml").with_overrides(overrides)
        results = workflow.run(workspace=home, quiet=True, artifacts=False)
        runs[example] = [r.id for r in results]
    return home, runs


def kernel_cmd(*args, cwd, env=None):
    """The real command line (``python -m kernel.cli``) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)


def explain(home, *args, env=None):
    return kernel_cmd("explain", *args, cwd=home, env={"KERNEL_HOME": str(home), **(env or {})})


def written(home, run_id: str, method: str) -> tuple[Path, dict]:
    folder = home / "runs" / run_id / "artifacts" / "explanations" / method
    return folder, json.loads((folder / "explanation.json").read_text())


def picture(folder: Path, sample: dict):
    from PIL import Image

    return Image.open(folder / sample["picture"]).convert("RGB")


def test_quickstart_three_methods_drawn_as_overlays_on_the_digits(trained):
    import numpy as np

    import kernel

    home, runs = trained
    (run_id,) = runs["quickstart"]
    proc = explain(home, run_id, "--method", "saliency", "--method", "grad_cam", "--method", "integrated_gradients",
                   "--index", "0", "1", "2", "--no-checks")
    assert proc.returncode == 0, proc.stderr
    loaded = kernel.load(run_id, workspace=home)
    for method in ("interpret.saliency", "interpret.grad_cam", "interpret.integrated_gradients"):
        folder, info = written(home, run_id, method)
        assert str(folder) in proc.stdout
        assert [s["index"] for s in info["samples"]] == [0, 1, 2]
        assert info["layer"] == ("features.4.0" if method == "interpret.grad_cam" else None)
        for sample in info["samples"]:
            assert sample["renderer"] == "vision.attribution"
            overlay = np.asarray(picture(folder, sample), dtype=float)
            assert overlay.shape[0] >= 32 and overlay.shape[1] >= 32
            # the plain picture of the same digit, as the run's samples are drawn, at the overlay's size
            plain = kernel.render_sample(loaded.plan, sample["index"], "valid")["input"][1]
            from PIL import Image

            plain = Image.open(io.BytesIO(plain.data)).convert("RGB").resize(overlay.shape[1::-1])
            assert np.abs(overlay - np.asarray(plain, dtype=float)).mean() > 5, method
        saved = __import__("torch").load(folder / "attributions.pt")
        assert saved["attributions"].shape[0] == 3 and saved["indices"] == [0, 1, 2]


def test_the_sanity_check_separates_the_trained_model_from_a_randomised_one(trained):
    home, runs = trained
    (run_id,) = runs["quickstart"]
    proc = explain(home, run_id, "--method", "saliency", "--samples", "8")
    assert proc.returncode == 0, proc.stderr
    _, info = written(home, run_id, "interpret.saliency")
    sanity = info["sanity"]
    # the trained model's saliency ranks pixels unlike a re-initialised model's
    assert sanity["passed"] is True and sanity["rank_correlation"] < 0.5, sanity
    assert "sanity check: rank correlation" in proc.stdout and "passed" in proc.stdout
    assert all(s["infidelity"] is not None and s["sensitivity"] is not None for s in info["samples"])
    assert info["summary"] and all(group["top"] for group in info["summary"].values())


EDGES = """
from kernel import Component, hookimpl

class Edges:
    '''An "explanation" that is the input's own magnitude: it ignores the model entirely.'''
    layer = None
    gradient = False

    def attribute(self, forward, x, target, context):
        forward(x, *context.extra)  # a real method asks the model; this one ignores the answer
        return x.abs()

@hookimpl
def kernel_attributions():
    return [Component("edges.magnitude", "ktest_edges_plugin:Edges", summary="the input's magnitude")]
"""


def test_a_third_party_method_is_listed_and_one_that_ignores_the_model_fails_the_sanity_check(trained, fake_plugin):
    home, runs = trained
    env = fake_plugin("edges", EDGES)
    listed = kernel_cmd("list", "attributions", "--json", cwd=home, env=env)
    assert "edges.magnitude" in {c["name"] for c in json.loads(listed.stdout)}
    (run_id,) = runs["quickstart"]
    proc = explain(home, run_id, "--method", "edges.magnitude", "--samples", "4", env=env)
    assert proc.returncode == 0, proc.stderr
    _, info = written(home, run_id, "edges.magnitude")
    assert info["sanity"]["passed"] is False and info["sanity"]["rank_correlation"] > 0.99
    assert "FAILED: the attributions hardly depend on the model" in proc.stdout


def test_text_runs_side_by_side_with_three_methods_and_the_tokens_are_the_texts_words(trained):
    import kernel

    home, runs = trained
    proc = explain(home, "--workflow", "text-sentiment", "--method", "layer_integrated_gradients",
                   "--method", "occlusion", "--method", "feature_ablation", "--samples", "3")
    assert proc.returncode == 0, proc.stderr
    assert "how alike the models' interpret.occlusion attributions are" in proc.stdout
    embedding_bag, cnn = runs["text_sentiment"]
    loaded = kernel.load(embedding_bag, workspace=home)
    raw = loaded.data.raw["valid"]
    vocabulary = set(loaded.facts["vocabulary"])
    for method in ("interpret.layer_integrated_gradients", "interpret.occlusion", "interpret.feature_ablation"):
        infos = [written(home, run, method)[1] for run in (embedding_bag, cnn)]
        assert [s["index"] for s in infos[0]["samples"]] == [s["index"] for s in infos[1]["samples"]]
        folder, info = written(home, embedding_bag, method)
        for sample in info["samples"]:
            assert sample["renderer"] == "text.attribution"
            info_text = picture_info(folder, sample)
            drawn = [word for word, _ in json.loads(info_text["tokens"])]
            unknown = set(json.loads(info_text["unknown"]))
            words = kernel.create("text.basic_english")(raw[sample["index"]][0])[:64]  # the vocabulary cuts at 64
            assert len(drawn) == len(words)
            for i, (shown, word) in enumerate(zip(drawn, words)):
                # a word out of the vocabulary is marked unknown; every other is drawn as it is in the text
                assert (i in unknown and word not in vocabulary) or (i not in unknown and shown == word)
    assert written(home, embedding_bag, "interpret.layer_integrated_gradients")[1]["layer"] == "embedding"


def picture_info(folder, sample) -> dict:
    from PIL import Image

    with Image.open(folder / sample["picture"]) as image:
        image.load()
        return dict(image.info)


def test_audio_run_three_methods_drawn_on_the_spectrogram(trained):
    import numpy as np

    home, runs = trained
    (run_id,) = runs["spoken_digits"]
    proc = explain(home, run_id, "--method", "grad_cam", "--method", "saliency", "--method", "occlusion",
                   "--samples", "2", "--no-checks")
    assert proc.returncode == 0, proc.stderr
    for method in ("interpret.grad_cam", "interpret.saliency", "interpret.occlusion"):
        folder, info = written(home, run_id, method)
        for sample in info["samples"]:
            assert sample["renderer"] == "audio.attribution"
            image = np.asarray(picture(folder, sample))
            assert image.shape[0] > 200 and image.shape[1] > 300
        saved = __import__("torch").load(folder / "attributions.pt")
        assert saved["attributions"].shape == saved["inputs"].shape  # (N, 1, samples): over time


THIRD_PARTY = '''
import torch
from kernel import Component, hookimpl

def points(size: int = 120):
    """Two noisy clusters in four features: the class is the sign of the first feature."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(size, 4, generator=g)
    return [(x[i], int(x[i, 0] > 0)) for i in range(size)]

class Mlp(torch.nn.Module):
    def __init__(self, input_shape, num_classes, hidden: int = 16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(input_shape[0], hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, num_classes))
    def forward(self, x):
        return self.net(x)

@hookimpl
def kernel_datasets():
    return [Component("tab.points", "ktest_tab_plugin:points", summary="points", tags=("tabular", "classification"))]

@hookimpl
def kernel_models():
    return [Component("tab.mlp", "ktest_tab_plugin:Mlp", summary="an MLP", tags=("tabular",))]
'''


@pytest.fixture(scope="module")
def tabular(trained, tmp_path_factory):
    """A third-party plugin's model trained for real by `kernel run` (its own dataset and model)."""
    home, _ = trained
    site = tmp_path_factory.mktemp("tab-site")
    (site / "ktest_tab_plugin.py").write_text(THIRD_PARTY)
    info = site / "ktest_tab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ktest-tab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kernel]\ntab = ktest_tab_plugin\n")
    env = {"PYTHONPATH": str(site)}
    flow = home / "tab.toml"
    flow.write_text('name = "tab"\nseed = 0\n[dataset]\nuse = "tab.points"\nsplit = { valid = 0.25 }\n'
                    '[[models]]\nuse = "tab.mlp"\n[trainer]\nuse = "kernel.supervised"\nepochs = 8\nbatch_size = 16\n')
    proc = kernel_cmd("run", flow, "--quiet", "--json", cwd=home, env={"KERNEL_HOME": str(home), **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["runs"][0]["id"], env


def test_a_third_party_model_is_explained_with_three_methods_as_signed_bars(trained, tabular):
    home, _ = trained
    run_id, env = tabular
    proc = explain(home, run_id, "--method", "integrated_gradients", "--method", "saliency",
                   "--method", "feature_ablation", "--samples", "6", env=env)
    assert proc.returncode == 0, proc.stderr
    import torch

    for method in ("interpret.integrated_gradients", "interpret.saliency", "interpret.feature_ablation"):
        folder, info = written(home, run_id, method)
        assert {s["renderer"] for s in info["samples"]} == {"interpret.heatmap"}
        assert picture(folder, info["samples"][0]).size[0] > 100
        # the class is the first feature's sign: that is where the model looks
        a = torch.load(folder / "attributions.pt")["attributions"].abs().mean(0)
        assert int(a.argmax()) == 0, (method, a)


def test_python_api_returns_the_attributions_and_draws_them_with_the_same_renderers(trained):
    import torch

    import kernel

    home, runs = trained
    loaded = kernel.load(runs["quickstart"][0], workspace=home)
    images = [x for x, _ in loaded.samples("valid", 2, raw=True)]
    explanation = loaded.explain(images, method="integrated_gradients", n_steps=16)
    assert explanation.attributions.shape == (2, 1, 32, 32) and explanation.method == "interpret.integrated_gradients"
    assert torch.equal(explanation.targets, loaded.predict(images).argmax(1))
    pictures = explanation.pictures()
    assert len(pictures) == 2 and pictures[0].suffix == ".png"
    with pytest.raises(AttributeError, match="did you mean 'explain'"):
        loaded.explian


# -- bad input: a clear message, exit 2, nothing written -----------------------------------------------------

def _nothing_written(home, run_id):
    folder = home / "runs" / run_id / "artifacts" / "explanations"
    return not folder.exists() or not any(p.name.startswith(".") for p in folder.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--method", "saliencey"], "unknown attribution method 'saliencey' (did you mean 'saliency'?)"),
    (["--method", "saliency", "--split", "tset"], "split 'tset' does not exist"),
    (["--method", "saliency", "--target", "12"], "target class 12 is out of range: the model has 10 classes (0-9)"),
    (["--method", "grad_cam", "--layer", "features.9"], "--layer 'features.9': the model has no such layer"),
    (["--method", "integrated_gradients", "--param", "n_stepz=3"], "has no parameter 'n_stepz' (did you mean 'n_steps'?)"),
    (["--method", "saliency", "--index", "5000"], "--index 5000 is out of range"),
    (["--method", "saliency", "--index", "-1"], "--index -1 is out of range"),
])
def test_bad_input_on_the_quickstart_run(trained, args, message):
    home, runs = trained
    (run_id,) = runs["quickstart"]
    before = sorted(p.name for p in (home / "runs" / run_id).rglob("*"))
    proc = explain(home, run_id, *args, "--no-checks")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (home / "runs" / run_id).rglob("*")) == before


def test_gradients_of_token_ids_and_a_missing_convolution_are_refused(trained, tabular):
    home, runs = trained
    text_run = runs["text_sentiment"][0]
    proc = explain(home, text_run, "--method", "integrated_gradients", "--samples", "2")
    assert proc.returncode == 2 and "integer (int64, token ids?), which has no gradient" in proc.stderr
    assert "interpret.layer_integrated_gradients" in proc.stderr
    run_id, env = tabular
    proc = explain(home, run_id, "--method", "grad_cam", env=env)
    assert proc.returncode == 2 and "interpret.grad_cam needs a convolution layer and the model (Mlp) has none" in proc.stderr


def test_a_planted_link_where_explanations_go_is_refused_before_any_work(trained, tmp_path):
    home, runs = trained
    run_dir = copy_run(home, runs["spoken_digits"][0], "-linked")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "artifacts").mkdir(exist_ok=True)
    link = run_dir / "artifacts" / "explanations"
    link.symlink_to(elsewhere)
    proc = explain(home, run_dir.name, "--method", "saliency", "--samples", "1")
    assert proc.returncode == 2 and f"{link} is a symbolic link" in proc.stderr
    assert not any(elsewhere.iterdir())


def copy_run(home, run_id: str, suffix: str) -> Path:
    """A copy of a run under another id, without its explanations (to break it without touching the original)."""
    source = home / "runs" / run_id
    copy = home / "runs" / (run_id + suffix)
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("explanations"))
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "id": copy.name}))
    return copy


def test_a_run_without_a_checkpoint_and_an_unknown_run_are_clear(trained):
    home, runs = trained
    broken = copy_run(home, runs["quickstart"][0], "-nockpt")
    shutil.rmtree(broken / "checkpoints")
    proc = explain(home, broken.name, "--method", "saliency")
    assert proc.returncode == 2 and f"run {broken.name} has no usable checkpoint" in proc.stderr
    assert not (broken / "artifacts" / "explanations").exists()
    proc = explain(home, "no-such-run")
    assert proc.returncode == 2 and "no run 'no-such-run'" in proc.stderr


# -- docs/interpretability.md is run, not just read -------------------------------------------------------------

DOC = (ROOT / "docs" / "interpretability.md").read_text()


def doc_block(first_line: str) -> str:
    import re

    return next(text for text in re.findall(r"^```python\n(.*?)^```", DOC, re.S | re.M) if text.startswith(first_line))


def test_the_docs_method_plugin_installs_checks_and_explains(trained, tmp_path):
    home, runs = trained
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_attributions.py").write_text(doc_block("# file: acme_attributions.py"))
    info = site / "acme-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kernel]\nacme = acme_attributions\n")
    env = {"PYTHONPATH": str(site)}
    checked = kernel_cmd("check-plugin", "acme", cwd=home, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (run_id,) = runs["quickstart"]
    proc = explain(home, run_id, "--method", "acme.guided_backprop", "--param", "positive=true", "--samples", "2",
                   "--no-checks", env=env)
    assert proc.returncode == 0, proc.stderr
    folder, info_json = written(home, run_id, "acme.guided_backprop")
    assert info_json["params"] == {"positive": True}
    assert __import__("torch").load(folder / "attributions.pt")["attributions"].min() >= 0


def test_the_docs_python_example_runs(trained, monkeypatch, tmp_path):
    home, runs = trained
    monkeypatch.setenv("KERNEL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    code = doc_block("import kernel").replace("quickstart-simple_cnn-20261204-134744-8e8f", runs["quickstart"][0])
    exec(compile(code, "docs/interpretability.md", "exec"), {})
    assert sorted(p.name for p in tmp_path.glob("explained-*")) == [f"explained-{i}.png" for i in range(4)]
