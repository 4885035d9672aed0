"""Image analyzers: sizes and aspect ratios as stored, duplicated images within and across splits,
and whether the images reach the model normalised.

Sizes and duplicates read the samples before the workflow's transforms (``raw = True``): a Resize
would hide the sizes, and random augmentations would hide duplicates. Class balance and channel
statistics come from the kernel (``kernel.class_balance``, ``kernel.value_stats``). Suggestions
are whole ``dataset.transforms`` lists (the workflow's own, with the transform added), so the
printed ``--set`` adopts them as they are.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import kernel
from kernel import Report

from .images import is_pil


def _height_width(x):
    if is_pil(x):  # PIL: (width, height)
        return int(x.size[1]), int(x.size[0])
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) >= 2:
        return int(shape[-2]), int(shape[-1])
    return None


class ImageSizes:
    """How big the images are and how their aspect ratios spread, per split, before any transform."""

    raw = True

    def __init__(self, top: int = 10):
        """
        Args:
            top: how many of the most common sizes the table lists.
        """
        self.top = top

    def start(self, info):
        self.sizes: dict[str, Counter] = {}
        self.skipped = 0
        self.transforms = list(info.get("transforms") or [])
        # the input shape after the workflow's transforms: a Resize already there needs no suggestion
        self.transformed = tuple((info.get("facts") or {}).get("input_shape") or ())

    def update(self, batch):
        counts = self.sizes.setdefault(batch["split"], Counter())
        for x in batch["inputs"]:
            hw = _height_width(x)
            if hw is None:
                self.skipped += 1
                continue
            counts[hw] += 1

    def finish(self):
        total = Counter()
        for counts in self.sizes.values():
            total.update(counts)
        if not total:
            return Report("Image sizes", values={"note": "no image-shaped inputs"})
        heights = [h for (h, w), n in total.items() for _ in range(n)]
        widths = [w for (h, w), n in total.items() for _ in range(n)]
        ratios = [w / h for (h, w), n in total.items() for _ in range(n) if h]
        heights.sort(), widths.sort(), ratios.sort()
        mid = len(heights) // 2
        values = {"images": len(heights), "distinct sizes": len(total),
                  "smallest (h x w)": f"{min(heights)} x {min(widths)}",
                  "largest (h x w)": f"{max(heights)} x {max(widths)}",
                  "median (h x w)": f"{heights[mid]} x {widths[mid]}",
                  "aspect ratio (w / h) min": round(ratios[0], 3), "aspect ratio median": round(ratios[mid], 3),
                  "aspect ratio max": round(ratios[-1], 3)}
        if self.skipped:
            values["inputs that are not images"] = self.skipped
        table = [{"height": h, "width": w, "aspect": round(w / h, 3) if h else None,
                  **{split: counts.get((h, w), 0) for split, counts in self.sizes.items()}}
                 for (h, w), _ in total.most_common(self.top)]
        suggestions = {}
        resized = len(self.transformed) >= 2 and min(self.transformed[-2:]) >= 32
        if (len(total) > 1 or heights[mid] < 32) and not resized:
            side = max(32, min(heights[mid], widths[mid]))
            # first, so that every later transform sees one size
            suggestions["dataset.transforms"] = [{"use": "vision.Resize", "size": [side, side]}, *self.transforms]
        return Report("Image sizes", values=values, table=table, suggestions=suggestions)


def image_hash(x) -> str:
    """A hash of an image's pixels and shape (PIL images, arrays and tensors alike)."""
    import numpy as np

    if is_pil(x):
        data, shape = x.tobytes(), (x.mode, x.size)
    else:
        array = np.ascontiguousarray(x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x))
        data, shape = array.tobytes(), (str(array.dtype), array.shape)
    h = hashlib.blake2b(data, digest_size=16)
    h.update(repr(shape).encode())
    return h.hexdigest()


class Duplicates:
    """Identical images within a split, and across splits: a validation image that is also a training
    image makes the validation score a lie (leakage)."""

    raw = True

    def __init__(self, examples: int = 20):
        """
        Args:
            examples: how many duplicated pairs the table lists.
        """
        self.examples = examples

    def start(self, info):
        self.first: dict[str, tuple[str, int]] = {}  # hash -> (split, index) where first seen
        self.position: dict[str, int] = {}
        self.within: Counter = Counter()
        self.across: Counter = Counter()
        self.pairs: list[dict] = []

    def update(self, batch):
        split = batch["split"]
        start = self.position.get(split, 0)
        for offset, x in enumerate(batch["inputs"]):
            index = start + offset
            key = image_hash(x)
            seen = self.first.get(key)
            if seen is None:
                self.first[key] = (split, index)
                continue
            if seen[0] == split:
                self.within[split] += 1
            else:
                self.across[f"{split} also in {seen[0]}"] += 1
            if len(self.pairs) < self.examples:
                self.pairs.append({"split": split, "index": index, "same as": f"{seen[0]}[{seen[1]}]"})
        self.position[split] = start + len(batch["inputs"])

    def finish(self):
        values = {"images": sum(self.position.values()), "distinct images": len(self.first)}
        for split in self.position:
            values[f"duplicates within {split}"] = self.within.get(split, 0)
        for key, n in self.across.items():
            values[key] = n
        leaked = sum(self.across.values())
        if leaked:  # advice, not a setting: no workflow value removes files
            values["leakage"] = (f"{leaked} image(s) of a held-out split also appear in another split; "
                                 f"remove them so validation measures unseen data")
        return Report("Duplicate images", values=values, table=self.pairs or None)


#: per-channel means within this of 0 and standard deviations within this of 1 count as normalised
NORMALISED = 0.1


class Normalization:
    """Whether the images reach the model normalised (mean 0, std 1 per channel, on the training
    split, after the workflow's transforms); if not, suggests adding ``vision.Normalize`` (its
    mean and std are fitted on the training split). Nothing is suggested when the workflow already
    normalises (a ``normalize`` data fact) or the values already are."""

    def start(self, info):
        self.already = "normalize" in (info.get("facts") or {})
        self.transforms = list(info.get("transforms") or [])
        self.stats = kernel.create("kernel.value_stats")
        self.stats.start(info)

    def update(self, batch):
        if not self.already:
            self.stats.update({**batch, "inputs": [x for x in batch["inputs"] if _is_image(x)]})

    def finish(self):
        if self.already:
            return Report("Normalisation", values={"normalised": "yes, by the workflow's transforms"})
        rows = self.stats.finish().table or []
        if not rows:
            return Report("Normalisation", values={"note": "no image tensors to measure"})
        values = {f"channel {r['channel']} mean": r["mean"] for r in rows}
        values.update({f"channel {r['channel']} std": r["std"] for r in rows})
        normalised = all(abs(r["mean"]) <= NORMALISED and abs(r["std"] - 1) <= NORMALISED for r in rows)
        values["normalised"] = "yes" if normalised else "no"
        suggestions = {} if normalised else {"dataset.transforms": [*self.transforms, {"use": "vision.Normalize"}]}
        return Report("Normalisation", values=values, table=rows, suggestions=suggestions)


def _is_image(x) -> bool:
    shape = tuple(getattr(x, "shape", ()))
    return len(shape) == 3 and shape[0] in (1, 3, 4)
