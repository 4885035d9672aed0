"""Whether a metric is better high or low: the one rule that the trainer's ``mode = "auto"``,
``Results.best``, ``kernel compare`` and the report share, so that they never disagree.

A run's ``run.json`` records the ``mode`` of its monitored metric: for that metric the run's own word
wins. Any other metric is judged by its name: losses, errors, distances and perplexities are
minimised, everything else (accuracy, F1, AUROC, ...) is maximised. A metric named after an error
rate in a domain's own abbreviation is best monitored with an explicit ``mode``.
"""
from __future__ import annotations

import re

#: Names of minimised metrics: a word anywhere in the name (``valid/loss``, ``train/nll_loss``,
#: ``valid/MeanSquaredError``), or one of the usual short forms as a whole word (``valid/mse``).
MINIMISED = re.compile(r"loss|error|perplexity|distance|(?<![a-z])(?:r?mse|mae|nll|ppl)(?![a-z])", re.I)


def mode_for(metric: str | None, info: dict | None = None) -> str:
    """``"min"`` or ``"max"`` for ``metric``; ``info`` (a run.json) gives its monitor's own mode."""
    if isinstance(info, dict) and metric and info.get("monitor") == metric and info.get("mode") in ("min", "max"):
        return info["mode"]
    return "min" if MINIMISED.search(metric or "") else "max"
