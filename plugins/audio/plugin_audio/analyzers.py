"""Statistics of audio samples, streamed split by split (an analyzer never holds the dataset).

``audio.durations``: clip lengths and the sample rate, and how much of each clip is zero padding
(a fixed ``duration`` pads short clips). ``audio.loudness``: level (RMS in dBFS), peaks, the share
of clipped samples and the share of near-silent samples. Both read the samples as the dataset
gives them (before the workflow's transforms: ``raw = True``).
"""
from __future__ import annotations

import math

from kernel import Report, figure_to_image, pyplot

CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped (full scale is 1.0)
SILENCE_LEVEL = 1e-3  # |x| below this (-60 dBFS) counts as silent


def _waveform(x):
    """A (channels, frames) float tensor, or None for inputs that are not waveforms."""
    import torch

    t = torch.as_tensor(x)
    if t.is_complex() or not t.is_floating_point() or t.ndim not in (1, 2):
        return None
    return t if t.ndim == 2 else t.unsqueeze(0)


class _PerSplit:
    raw = True

    def start(self, info):
        self.rate = (info.get("facts") or {}).get("sample_rate")
        self.splits: dict[str, dict] = {}
        self.skipped = 0

    def _split(self, name) -> dict:
        return self.splits.setdefault(name, {"clips": 0})


class Durations(_PerSplit):
    """Clip durations, the sample rate, and the share of each clip that is zero padding."""

    def update(self, batch):
        s = self._split(batch["split"])
        for x in batch["inputs"]:
            w = _waveform(x)
            if w is None:
                self.skipped += 1
                continue
            frames = int(w.shape[-1])
            nonzero = (w.abs().amax(0) > 0).nonzero()
            padded = frames - (int(nonzero[-1]) - int(nonzero[0]) + 1) if len(nonzero) else frames
            s["clips"] += 1
            s["min"] = min(s.get("min", frames), frames)
            s["max"] = max(s.get("max", frames), frames)
            s["total"] = s.get("total", 0) + frames
            s["padded"] = s.get("padded", 0) + padded

    def finish(self):
        unit = "s" if self.rate else "samples"
        scale = 1 / self.rate if self.rate else 1
        table, values = [], {"sample_rate": self.rate or "unknown"}
        for name, s in self.splits.items():
            if not s["clips"]:
                continue
            row = {"split": name, "clips": s["clips"], f"shortest ({unit})": round(s["min"] * scale, 4),
                   f"mean ({unit})": round(s["total"] / s["clips"] * scale, 4),
                   f"longest ({unit})": round(s["max"] * scale, 4),
                   "zero padding": round(s["padded"] / s["total"], 4)}
            table.append(row)
            values[f"{name}.mean_duration_{unit}"] = row[f"mean ({unit})"]
            values[f"{name}.zero_padding"] = row["zero padding"]
        if self.skipped:
            values["not_waveforms"] = self.skipped
        suggestions = {}
        padding = max((r["zero padding"] for r in table), default=0)
        if padding > 0.5 and self.rate:
            mean = max(r[f"mean ({unit})"] for r in table) * (1 - padding)
            suggestions["dataset.duration"] = round(max(0.1, mean * 1.5), 2)
        return Report("Audio durations", values=values, table=table, suggestions=suggestions)


class Loudness(_PerSplit):
    """Level (RMS, dBFS), peak, clipping and silence per split, with a histogram of clip levels."""

    def update(self, batch):
        s = self._split(batch["split"])
        levels = s.setdefault("levels", [])
        for x in batch["inputs"]:
            w = _waveform(x)
            if w is None:
                self.skipped += 1
                continue
            a = w.abs()
            n = a.numel()
            rms = float(w.float().pow(2).mean().sqrt())
            levels.append(20 * math.log10(max(rms, 1e-10)))
            s["clips"] += 1
            s["samples"] = s.get("samples", 0) + n
            s["clipped"] = s.get("clipped", 0) + int((a >= CLIP_LEVEL).sum())
            s["silent"] = s.get("silent", 0) + int((a < SILENCE_LEVEL).sum())
            s["peak"] = max(s.get("peak", 0.0), float(a.max()))
            s["clipped_clips"] = s.get("clipped_clips", 0) + int(bool((a >= CLIP_LEVEL).any()))

    def finish(self):
        table, values = [], {}
        for name, s in self.splits.items():
            if not s["clips"]:
                continue
            levels = sorted(s["levels"])
            row = {"split": name, "clips": s["clips"], "mean level (dBFS)": round(sum(levels) / len(levels), 2),
                   "quietest (dBFS)": round(levels[0], 2), "loudest (dBFS)": round(levels[-1], 2),
                   "peak": round(s["peak"], 4), "clipped samples": round(s["clipped"] / s["samples"], 6),
                   "clips with clipping": s["clipped_clips"], "silent samples": round(s["silent"] / s["samples"], 4)}
            table.append(row)
            for key, label in (("level_dbfs", "mean level (dBFS)"), ("clipped", "clipped samples"),
                               ("silence", "silent samples")):
                values[f"{name}.{key}"] = row[label]
        if self.skipped:
            values["not_waveforms"] = self.skipped
        return Report("Audio loudness, clipping and silence", values=values, table=table, figure=self._figure())

    def _figure(self):
        if not any(s.get("levels") for s in self.splits.values()):
            return None
        fig, ax = pyplot().subplots(figsize=(5, 3))
        for name, s in self.splits.items():
            if s.get("levels"):
                ax.hist(s["levels"], bins=30, alpha=0.6, label=name)
        ax.set_xlabel("clip level (dBFS, RMS)")
        ax.set_ylabel("clips")
        ax.legend()
        fig.tight_layout()
        return figure_to_image(fig, dpi=90)
