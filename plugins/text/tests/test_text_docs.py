"""The workflows shown in docs/text.md build, and run through the real command line (shortened) on
files the test writes where the docs say they go."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

import textfiles
from textfiles import rows, write_csv

DOC = Path(__file__).resolve().parents[3] / "docs" / "text.md"
BLOCKS = re.findall(r"^```toml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def _block(use: str) -> str:
    (block,) = [b for b in BLOCKS if f'use = "{use}"' in b]
    return block


def test_the_docs_show_these_workflows_and_no_other():
    assert len(BLOCKS) == 3
    assert [tomllib.loads(b)["dataset"]["use"] for b in BLOCKS] == ["text.rotten_tomatoes", "text.csv",
                                                                   "text.ag_news"]


def test_the_docs_workflow_builds_and_fills_the_model_from_the_data():
    from kernel import Workflow, prepare

    plan = prepare(Workflow(name="docs", **tomllib.loads(_block("text.rotten_tomatoes"))))
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 3893, "valid": 973}
    model, filled = plan.model(0)
    assert filled["vocab_size"] == plan.data.facts["vocab_size"] and filled["num_classes"] == 2


def _own_files(home: Path):
    """reviews.csv and reviews-valid.csv with the columns the docs name: id, review, sentiment."""
    header = ("id", "review", "sentiment")
    write_csv(home / "reviews.csv", [(i, t, y) for i, (t, y) in enumerate(rows(3))], header=header)
    write_csv(home / "reviews-valid.csv", [(100 + i, t, y) for i, (t, y) in enumerate(rows())], header=header)


CASES = [  # (dataset, files to write in the workspace, extra --set, expected splits)
    ("text.rotten_tomatoes", None, ["dataset.fraction=0.1", "trainer.batch_size=16"], {"train": 389, "valid": 97}),
    ("text.csv", _own_files, ["trainer.batch_size=16"], {"train": 36, "valid": 12}),
    ("text.ag_news", lambda home: textfiles.ag_news(home / "data"), ["trainer.batch_size=2"], {"train": 3, "valid": 1, "test": 2}),
]


@pytest.mark.parametrize("use,files,extra,splits", CASES, ids=[c[0] for c in CASES])
def test_the_docs_workflows_run(use, files, extra, splits, cli, workspace, monkeypatch):
    from kernel import Workflow, prepare

    if files:
        files(workspace)
    monkeypatch.chdir(workspace)  # the docs' paths are relative to where kernel runs
    path = workspace / "docs-workflow.toml"
    path.write_text(_block(use), encoding="utf-8")
    overrides = ["trainer.epochs=1", *extra]
    values = {key: tomllib.loads(f"v = {value}")["v"] for key, value in (o.split("=") for o in overrides)}
    workflow = Workflow.from_file(path).with_overrides(values)
    assert {k: len(v) for k, v in prepare(workflow).data.splits.items()} == splits
    proc = cli("run", "--json", path, *[arg for o in overrides for arg in ("--set", o)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = json.loads(proc.stdout)["runs"]
    assert run["status"] == "completed" and run["epochs_done"] == 1
