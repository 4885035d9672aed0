"""Text statistics, streamed split by split: lengths in tokens, and how much the vocabulary covers.

Both work on whatever the workflow's transforms produce: token ids (after ``text.vocab``), token
lists (after a tokenizer alone) or raw text (counted in white-space words).
"""
from __future__ import annotations

from collections import Counter

from kernel import Report, figure_to_image, pyplot

COVER = 0.95  # the share of samples a suggested max_length keeps whole


def length_of(x) -> int:
    if isinstance(x, str):
        return len(x.split())
    shape = getattr(x, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    return len(x)


def quantile(counts: Counter, q: float) -> int:
    """The smallest length that at least a share ``q`` of the samples do not exceed."""
    total, seen = sum(counts.values()), 0
    for length in sorted(counts):
        seen += counts[length]
        if seen >= q * total:
            return length
    return 0


class LengthDistribution:
    """Sample lengths in tokens per split, with a histogram; suggests a ``max_length`` (``text.vocab``)
    that keeps 95 % of the training samples whole."""

    def start(self, info):
        self.splits: dict[str, Counter] = {}
        # where text.vocab sits in the workflow's transforms: its max_length is what is suggested
        self.vocab_at = next((i for i, t in enumerate(info.get("transforms") or []) if t.get("use") == "text.vocab"),
                             None)

    def update(self, batch):
        counts = self.splits.setdefault(batch["split"], Counter())
        counts.update(length_of(x) for x in batch["inputs"])

    def finish(self) -> Report:
        rows = []
        for split, counts in self.splits.items():
            n = sum(counts.values())
            if not n:
                continue
            rows.append({"split": split, "samples": n, "mean": round(sum(k * v for k, v in counts.items()) / n, 2),
                         "median": quantile(counts, 0.5), "p95": quantile(counts, COVER), "max": max(counts),
                         "empty": counts.get(0, 0)})
        main = next((r for r in rows if r["split"] == "train"), rows[0] if rows else None)
        report = Report("Text lengths (tokens)", table=rows)
        if main is None:
            return report
        report.values = {"mean_length": main["mean"], "median_length": main["median"],
                         "p95_length": main["p95"], "max_length": main["max"], "empty_samples": main["empty"]}
        if main["p95"] < main["max"] and self.vocab_at is not None:  # text.vocab's max_length: 95 % stay whole
            report.suggestions = {f"dataset.transforms[{self.vocab_at}].max_length": main["p95"]}
        report.figure = self.figure()
        return report

    def figure(self):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3))
        for split, counts in self.splits.items():
            lengths = sorted(counts)
            ax.hist(lengths, weights=[counts[k] for k in lengths], bins=min(50, max(1, len(lengths))), alpha=0.6,
                    label=split)
        ax.set_xlabel("tokens per sample")
        ax.set_ylabel("samples")
        ax.legend()
        return figure_to_image(fig)


class VocabularyCoverage:
    """The share of tokens the vocabulary does not know (``<unk>``), per split: on the validation
    split it says what the chosen ``min_freq`` / ``max_size`` lose on unseen text."""

    def start(self, info):
        facts = info.get("facts") or {}
        self.unk, self.vocab_size = facts.get("unk_idx"), facts.get("vocab_size")
        self.vectors_coverage = facts.get("vectors_coverage")
        self.counts: dict[str, list[int]] = {}  # split -> [tokens, unknown tokens, samples with any unknown]
        self.unseen = False

    def update(self, batch):
        if self.unk is None:
            return
        c = self.counts.setdefault(batch["split"], [0, 0, 0])
        for x in batch["inputs"]:
            if not hasattr(x, "shape") or "int" not in str(getattr(x, "dtype", "")):
                self.unseen = True
                return
            unknown = int((x == self.unk).sum())
            c[0] += int(x.numel())
            c[1] += unknown
            c[2] += unknown > 0

    def finish(self) -> Report:
        report = Report("Vocabulary coverage")
        if self.unk is None or self.unseen:
            report.values = {"note": "no vocabulary in this workflow: add text.vocab to dataset.transforms"}
            return report
        rows = [{"split": s, "tokens": t, "unknown": u, "unknown_share": round(u / t, 4) if t else 0.0,
                 "samples_with_unknown": k} for s, (t, u, k) in self.counts.items()]
        report.table = rows
        report.values = {"vocab_size": self.vocab_size}
        for r in rows:
            report.values[f"unknown_share_{r['split']}"] = r["unknown_share"]
        if self.vectors_coverage is not None:
            report.values["vectors_coverage"] = self.vectors_coverage
        return report
