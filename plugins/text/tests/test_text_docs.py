"""The workflow shown in docs/text.md builds: its dataset, fitted vocabulary and model."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "text.md"


def test_the_docs_workflow_builds_and_fills_the_model_from_the_data():
    from kernel.build import prepare
    from kernel.workflow import Workflow

    (block,) = re.findall(r"^```toml\n(.*?)^```", DOC.read_text(), re.S | re.M)
    plan = prepare(Workflow(name="docs", **tomllib.loads(block)))
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 3893, "valid": 973}
    model, filled = plan.model(0)
    assert filled["vocab_size"] == plan.data.facts["vocab_size"] and filled["num_classes"] == 2
