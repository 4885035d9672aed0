"""Generic analyzers: class balance (with a shuffle check) and per-channel value statistics."""
from __future__ import annotations

import math

from ..component import Report

#: the largest class over the smallest above which class weights are worth suggesting: below it
#: the weights stay near 1 and change nothing a person would notice
IMBALANCE_WORTH_WEIGHTS = 1.5


class ClassBalance:
    """Counts per class for each split, and a runs test on the label order of the training split.

    Sorted or grouped labels (all of class 0, then all of class 1) make a training split that a
    loader without shuffling would feed badly; the randomness score says how the order compares
    to a shuffled one (1.0 looks random, near 0 looks sorted). An imbalanced training split gets
    class weights for the loss, as ``trainer.loss``; regression targets are not classes and are
    not counted.
    """

    def start(self, info):
        self.classes = info.get("classes")
        self.task = (info.get("facts") or {}).get("task")
        self.counts: dict[str, dict[int, int]] = {}
        self.order: list[int] = []
        self.skipped = 0

    def update(self, batch):
        counts = self.counts.setdefault(batch["split"], {})
        for target in batch["targets"]:
            label = _label(target)
            if label is None:
                self.skipped += 1  # not a class label (boxes, masks, regression values)
                continue
            counts[label] = counts.get(label, 0) + 1
            if batch["split"] == "train" and len(self.order) < 100_000:
                self.order.append(label)

    def _name(self, label):
        return self.classes[label] if self.classes and 0 <= label < len(self.classes) else str(label)

    def finish(self):
        labels = sorted({k for c in self.counts.values() for k in c})
        if self.task == "regression" or not labels:
            return Report("Class balance", values={"note": "the targets are not class labels: nothing to count"})
        splits = list(self.counts)
        table = [{"class": self._name(lab), **{s: self.counts[s].get(lab, 0) for s in splits}}
                 for lab in labels]
        values: dict = {"classes": len(labels)}
        suggestions = {}
        train = self.counts.get("train", {})
        if train:
            sizes = list(train.values())
            imbalance = max(sizes) / max(1, min(sizes))
            values["imbalance (largest / smallest)"] = round(imbalance, 3)
            total = sum(sizes)
            if imbalance > IMBALANCE_WORTH_WEIGHTS:
                # one weight per class index (the loss indexes them by label); a class absent from
                # the training split keeps weight 1
                weights = [round(total / (len(train) * train[i]), 4) if i in train else 1.0
                           for i in range(max(len(self.classes or ()), max(labels) + 1))]  # the loss wants one per class
                suggestions["trainer.loss"] = {"use": "torch.nn.CrossEntropyLoss", "weight": weights}
            values["order randomness"] = round(_runs_score(self.order), 3)
            values["majority baseline (train)"] = round(max(sizes) / total, 4)
        if self.skipped:
            values["targets that are not class labels"] = self.skipped
        return Report("Class balance", values=values, table=table, figure=self._figure(table, splits),
                      suggestions=suggestions)

    def _figure(self, table, splits):
        if not table:
            return None
        from ..figures import figure_to_image, pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(max(3, 0.4 * len(table) + 1), 2.6))
        width = 0.8 / max(1, len(splits))
        for i, split in enumerate(splits):
            ax.bar([j + i * width for j in range(len(table))], [row[split] for row in table], width, label=split)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(table))], [r["class"] for r in table],
                      rotation=45 if len(table) > 6 else 0, fontsize=7)
        ax.legend(fontsize=7)
        ax.set_title("samples per class")
        return figure_to_image(fig)


def _label(target) -> int | None:
    """A class index from a target: an integer, or a one-element integer tensor; else None."""
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return target
    dtype = str(getattr(target, "dtype", ""))
    if "int" in dtype and getattr(target, "numel", lambda: 0)() == 1:
        return int(target)
    return None


def _runs_score(labels: list[int]) -> float:
    """Observed label changes between neighbours over those expected in a random order (capped at 1)."""
    n = len(labels)
    if n < 3:
        return 1.0
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    freq: dict[int, int] = {}
    for lab in labels:
        freq[lab] = freq.get(lab, 0) + 1
    p_same = sum((c / n) ** 2 for c in freq.values())
    expected = (n - 1) * (1 - p_same)
    return 1.0 if expected == 0 else min(1.0, changes / expected)


class ValueStats:
    """Per-channel mean and standard deviation of the inputs, streamed (Chan et al.'s merge).

    Channels are the first dimension of inputs with two or more dimensions (C, H, W or C, T);
    1-D inputs count as one channel. The table holds ``channel``, ``mean`` and ``std``. It suggests
    nothing: the transform that normalises belongs to a domain plugin, whose analyzer suggests it
    (``vision.normalization``). Inputs of dtype int64 are indices (token ids, categories), not
    measurements, and are left out.
    """

    def __init__(self, split: str = "train"):
        """
        Args:
            split: the split whose statistics are computed (normalisation must not see validation data).
        """
        self.split = split

    def start(self, info):
        self.count = None
        self.mean = None
        self.m2 = None
        self.minimum, self.maximum = math.inf, -math.inf

    def update(self, batch):
        import torch

        if batch["split"] != self.split:
            return
        for x in batch["inputs"]:
            x = torch.as_tensor(x).detach()
            # int64 is torch's dtype for indices (token ids, categories): their mean means nothing
            if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32)):
                continue
            x = x.double()
            flat = x.reshape(1, -1) if x.ndim < 2 else x.reshape(x.shape[0], -1)
            n = flat.shape[1]
            mean = flat.mean(1)
            m2 = ((flat - mean[:, None]) ** 2).sum(1)
            self.minimum = min(self.minimum, float(flat.min()))
            self.maximum = max(self.maximum, float(flat.max()))
            if self.mean is None or self.mean.shape != mean.shape:
                if self.mean is not None:
                    continue  # a sample with another channel count: leave it out
                self.count, self.mean, self.m2 = n, mean, m2
                continue
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * n / total
            self.m2 = self.m2 + m2 + delta ** 2 * self.count * n / total
            self.count = total

    def _mean_std(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel."""
        if self.mean is None:
            return [], []
        std = (self.m2 / max(1, self.count - 1)).sqrt()
        return [round(float(v), 6) for v in self.mean], [round(max(float(v), 1e-8), 6) for v in std]

    def finish(self):
        mean, std = self._mean_std()
        if not mean:
            return Report("Value statistics", values={"note": "no measured inputs (int64 inputs are indices, "
                                                             "such as token ids, and are not measured)"})
        table = [{"channel": i, "mean": m, "std": s} for i, (m, s) in enumerate(zip(mean, std))]
        return Report("Value statistics", values={"channels": len(mean), "min": self.minimum, "max": self.maximum},
                      table=table)
