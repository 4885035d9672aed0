"""plugin-tuning across plugins: the shipped example tunes a vision workflow and its best values
reproduce the best trial's score exactly; docs/tuning.md's table and Python example run."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "tuning.md").read_text()


@pytest.mark.slow
def test_the_example_prints_the_best_trial_and_its_overrides_reproduce_it_exactly(cli, workspace):
    example = str(ROOT / "examples" / "tuning.toml")
    # fewer trials and epochs than the file's, the same space, pruner and data
    tuned = cli("tune", example, "--set", "tuning.trials=5", "--set", "trainer.epochs=3")
    assert tuned.returncode == 0, tuned.stderr
    assert re.search(r"^best trial: \d+  valid/accuracy = ", tuned.stdout, re.M), tuned.stdout
    overrides = workspace / "studies" / "digits-tuning.best.toml"
    assert f"--set-file {overrides}" in tuned.stdout
    values = tomllib.loads(overrides.read_text())
    assert set(values) == {"trainer.optimizer.lr", "trainer.batch_size", "models[0].params.width",
                           "models[0].params.dropout"}
    best_id = re.search(r"^best trial: \d+  valid/accuracy = \S+  run (\S+)$", tuned.stdout, re.M).group(1)
    best = json.loads((workspace / "runs" / best_id / "run.json").read_text())
    assert best["sampled"] == values

    again = cli("run", example, "--set", "trainer.epochs=3", "--set-file", str(overrides), "--quiet", "--json")
    assert again.returncode == 0, again.stderr
    run = json.loads(again.stdout)["runs"][0]
    assert run["best"] == best["best"] and run["final"] == best["final"]


def test_the_tuning_table_in_the_docs_is_valid_for_the_example_workflow():
    import kernel

    block = re.search(r"```toml\n(\[tuning\]\n.*?)```", DOC, re.S).group(1)
    table = tomllib.loads(block)["tuning"]
    # a choice of model must fit the model's own parameters in the file: the doc's space keeps them in it
    workflow = kernel.Workflow.from_file(ROOT / "examples" / "tuning.toml").with_overrides(
        {"tuning": table, "models[0].params": {}})
    workflow.validate_components()  # every path and every choice of the documented space
    assert set(table["space"]) >= {"models[0].use", "models[0].params.width", "dataset.transforms"}


@pytest.mark.slow
def test_the_python_example_of_the_docs_runs(workspace, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.split("## From Python")[1], re.S).group(1)
    monkeypatch.chdir(ROOT)  # the example names examples/tuning.toml; its runs go to KERNEL_HOME
    exec(compile(code, "docs/tuning.md", "exec"), {})
    runs = [json.loads(p.read_text()) for p in (workspace / "runs").glob("*/run.json")]
    assert len(runs) == 4 and {r["study"] for r in runs} == {"digits-tuning"}
