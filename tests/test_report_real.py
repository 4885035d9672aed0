"""`kernel report` on runs that `kernel run` really trained (examples/synthetic.toml, one epoch)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_report_of_really_trained_runs(cli, workspace):
    trained = cli("run", ROOT / "examples" / "synthetic.toml", "--set", "trainer.epochs=1", "--quiet")
    assert trained.returncode == 0, trained.stderr
    result = cli("report", "-o", "report.html")
    assert result.returncode == 0, result.stderr
    assert "report of 2 runs" in result.stdout
    page = (workspace / "report.html").read_text()
    data = json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    assert sorted(r["label"] for r in data["runs"]) == ["linear", "mlp"]
    assert all(data["curves"][r["id"]]["epoch"] == [1] for r in data["runs"])
    (group,) = data["groups"]  # one dataset fingerprint
    assert group["metric"] == "valid/accuracy" and group["best_run"] in group["runs"]
    dataset = group["dataset"]
    assert dataset["confusion"]["run"] == group["best_run"] and len(dataset["confusion"]["classes"]) == 4
    assert dataset["samples"] and dataset["samples"][0]["prediction"].startswith("data:image/png;base64,")
    assert {"kernel.class_balance", "kernel.value_stats"} <= {r["name"] for r in dataset["reports"]}
    assert "https://" not in page.split("<script>", 1)[0]
