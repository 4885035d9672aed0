"""Image analyzers: sizes and aspect ratios as stored, and duplicated images within and across splits.

Both read the samples before the workflow's transforms (``raw = True``): a Resize would hide the
sizes, and random augmentations would hide duplicates. Class balance and channel statistics come
from the kernel (``kernel.class_balance``, ``kernel.value_stats``).
"""
from __future__ import annotations

import hashlib
from collections import Counter

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
            suggestions["resize"] = {"use": "vision.Resize", "size": [side, side]}
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
        suggestions = {}
        if leaked:
            suggestions["deduplicate"] = (f"{leaked} image(s) of a held-out split also appear in another split; "
                                          f"remove them so validation measures unseen data")
        return Report("Duplicate images", values=values, table=self.pairs or None, suggestions=suggestions)
