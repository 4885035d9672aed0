"""Tiny labelled texts and files in real formats, written by the tests (imported by name)."""
from __future__ import annotations

from pathlib import Path

# Positive and negative snippets with a shared vocabulary, so that a model can learn the split.
POSITIVE = ["a wonderful, moving film", "great acting and a great story", "I loved it, truly wonderful",
            "a joyful and moving story", "great fun from start to end", "wonderful music and great acting"]
NEGATIVE = ["a dull, boring film", "terrible acting and a dull story", "I hated it, truly boring",
            "a tedious and boring mess", "terrible from start to end", "boring music and terrible acting"]


def rows(n_repeat: int = 1) -> list[tuple[str, str]]:
    out = []
    for _ in range(n_repeat):
        out += [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    return out


def write_csv(path: Path, records, header=("text", "label"), delimiter=","):
    """A CSV/TSV file written by the csv module (quoting as spreadsheets do)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(records)
    return path


def prepared(dataset: dict, models=("text.embedding_bag",)):
    """The kernel's plan for a workflow on ``dataset``: splits, fitted transforms, facts."""
    from kernel.build import prepare
    from kernel.workflow import Workflow

    return prepare(Workflow(dataset=dataset, models=[{"use": m} for m in models]))
