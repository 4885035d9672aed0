"""Text analyzers: the length distribution suggests a max_length keeping 95 % of the texts whole; the
coverage report gives the share of unknown tokens on the validation split at the chosen min_freq."""
from __future__ import annotations

import pytest

from textfiles import write_csv


def _reports(tmp_path, train_records, valid_records, **vocab):
    from kernel import run_analyzers, prepare, Workflow

    train = write_csv(tmp_path / "train.csv", train_records)
    valid = write_csv(tmp_path / "valid.csv", valid_records)
    plan = prepare(Workflow(name="analyze", dataset={
        "use": "text.csv", "path": str(train), "valid_path": str(valid),
        "transforms": [{"use": "text.whitespace"}, {"use": "text.vocab", **vocab}]},
        models=[{"use": "text.embedding_bag"}], analyzers=[{"use": "text.lengths"}, {"use": "text.vocab_coverage"}]))
    return dict(run_analyzers(plan))


def test_lengths_suggest_a_max_length_that_keeps_95_percent_whole(tmp_path):
    train = [(" ".join(["w"] * n), "ab"[n % 2]) for n in range(1, 101)]  # 1 to 100 tokens
    valid = [("w w w", "a"), ("w", "b")]
    report = _reports(tmp_path, train, valid)["text.lengths"]
    assert report.values["max_length"] == 100 and report.values["median_length"] == 50
    assert report.values["p95_length"] == 95
    assert report.suggestions == {"dataset.transforms[1].max_length": 95}  # text.vocab is the second transform
    assert report.set_options() == ["--set 'dataset.transforms[1].max_length=95'"]
    kept = sum(1 for text, _ in train if len(text.split()) <= 95)
    assert kept / len(train) >= 0.95 and sum(1 for t, _ in train if len(t.split()) <= 94) / len(train) < 0.95
    by_split = {row["split"]: row for row in report.table}
    assert by_split["valid"]["samples"] == 2 and by_split["valid"]["max"] == 3
    assert report.figure is not None and report.figure.size[0] > 100


def test_no_max_length_is_suggested_when_every_text_is_short(tmp_path):
    train = [("one two", "a"), ("three four", "b")] * 10
    report = _reports(tmp_path, train, train[:2])["text.lengths"]
    assert report.values["max_length"] == 2 and not report.suggestions


@pytest.mark.parametrize("min_freq,kept,unknown_valid", [(1, 3, 1 / 4), (2, 2, 2 / 4), (3, 1, 3 / 4)])
def test_coverage_is_the_unknown_share_on_valid_at_min_freq(tmp_path, min_freq, kept, unknown_valid):
    # in training: "often" 3 times, "twice" 2 times, "once" once; valid adds a word never seen
    train = [("often twice once", "a"), ("often twice", "b"), ("often", "a")]
    valid = [("often twice", "a"), ("once never", "b")]
    report = _reports(tmp_path, train, valid, min_freq=min_freq)["text.vocab_coverage"]
    # valid holds 4 tokens: "never" is always unknown; "once" below min_freq 2, "twice" below 3
    assert report.values["unknown_share_valid"] == pytest.approx(unknown_valid, abs=1e-4)
    by_split = {row["split"]: row for row in report.table}
    assert by_split["valid"]["tokens"] == 4
    assert by_split["valid"]["unknown"] == round(unknown_valid * 4)
    assert report.values["vocab_size"] == 4 + kept  # the four specials and the kept words


def test_coverage_without_a_vocabulary_says_so(tmp_path):
    from kernel import run_analyzers, prepare, Workflow

    path = write_csv(tmp_path / "r.csv", [("a b", "x"), ("c d", "y")] * 3)
    plan = prepare(Workflow(name="raw", dataset={"use": "text.csv", "path": str(path)},
                            models=[{"use": "kernel.linear"}], analyzers=[{"use": "text.vocab_coverage"}]))
    report = dict(run_analyzers(plan))["text.vocab_coverage"]
    assert "add text.vocab" in report.values["note"]
