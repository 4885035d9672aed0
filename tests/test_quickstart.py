"""The main workflow (examples/quickstart.toml, what `make run` trains), shortened, then its report:
vision plugin, trainer, run store and report together."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_trains_every_model_and_reports_them(cli, workspace):
    out = cli("run", ROOT / "examples" / "quickstart.toml", "--quiet",
              "--set", "trainer.epochs=1", "--set", "dataset.fraction=0.25")
    assert out.returncode == 0, out.stderr
    table = out.stdout.splitlines()
    models = ["simple_cnn", "resnet18", "mobilenet_v2", "mobilenet_v2-narrow"]
    for model in models:
        assert any(line.split()[1:2] == [model] for line in table), (model, out.stdout)
    assert table[-2].startswith(f"runs: {workspace / 'runs'}")

    report = cli("report", "--workflow", "quickstart", "-o", "quickstart-report.html")
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip().endswith(str(workspace / "quickstart-report.html"))
    page = (workspace / "quickstart-report.html").read_text()
    data = json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    assert sorted(r["label"] for r in data["runs"]) == sorted(models)
    assert all(r["baseline"]["metric"] == "valid/accuracy" for r in data["runs"])
    (group,) = data["groups"]
    dataset = group["dataset"]
    assert len(dataset["confusion"]["classes"]) == 10
    names = {r["name"] for r in dataset["reports"]}
    assert {"kernel.class_balance", "kernel.value_stats"} <= names and any(n.startswith("vision.") for n in names)
    sample = dataset["samples"][0]
    assert sample["input"].startswith("data:image/png;base64,") and sample["prediction"]
