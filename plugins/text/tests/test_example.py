"""examples/text_sentiment.toml through the real command line, shortened: every model trains and beats
the majority-class baseline stored with its run (the full example's accuracies are in docs/text.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "text_sentiment.toml"


@pytest.mark.slow
def test_sentiment_example_trains_every_model_above_the_baseline(cli, workspace):
    """A third of the snippets and 2 epochs instead of 8 (about 15 s on 2 cores)."""
    proc = cli("run", "--json", EXAMPLE, "--set", "trainer.epochs=2", "--set", "dataset.fraction=0.3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout)["runs"]
    assert [r["use"] for r in runs] == ["text.embedding_bag", "text.cnn", "text.gru", "text.transformer"]
    for run in runs:
        assert run["status"] == "completed" and run["epochs_done"] == 2, run
        assert run["classes"] == ["rotten", "fresh"]
        # the vocabulary's facts reached the model
        assert run["params"]["vocab_size"] == run["facts"]["vocab_size"] > 1000 and run["params"]["padding_idx"] == 1
        losses = [json.loads(line)["train/loss"]
                  for line in (workspace / "runs" / run["id"] / "metrics.jsonl").read_text().splitlines()]
        assert len(losses) == 2 and losses[1] < losses[0], (run["use"], losses)  # it learns
    baseline = runs[0]["baseline"]
    assert baseline["metric"] == "valid/accuracy" and 0.4 < baseline["accuracy"] < 0.6
    accuracy = {r["use"]: r["best"]["valid/accuracy"] for r in runs}
    assert min(accuracy.values()) > baseline["accuracy"], accuracy
    assert max(accuracy.values()) > baseline["accuracy"] + 0.1, accuracy
    # the report's pieces: token pictures of the inputs, the text analyzers' reports
    first = workspace / "runs" / runs[0]["id"] / "artifacts"
    samples = json.loads((first / "samples" / "samples.json").read_text())
    assert samples[0]["renderers"]["input"] == "text.tokens"
    lengths = json.loads((first / "reports" / "text.lengths.json").read_text())
    # text.vocab is the second transform: its max_length, adoptable with --set as it is
    assert lengths["suggestions"]["dataset.transforms[1].max_length"] < lengths["values"]["max_length"] <= 64
