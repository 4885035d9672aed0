"""Labelled audio files as kernel datasets, split by the dataset itself.

Every audio dataset is a list of ``(file, label)`` made into splits by :func:`make_splits`: each
split is an :class:`AudioClips` whose items are ``(float32 tensor (channels, frames), label)``, the
training split cropping at random and the others at the centre (see ``clips.py`` for why the
dataset, not a transform, does this). Files are checked when the dataset is built (headers only,
unless ``on_bad = "skip"``, which decodes each file once so that damaged files are left out and
counted rather than met in the middle of an epoch).

Data facts: ``sample_rate`` (models ask for it by name), ``classes`` and ``targets``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from kernel import KernelError

from . import io as audio_io
from .clips import Shaper
from .io import BadAudio

ON_BAD = ("error", "skip")


class AudioClips:
    """A map-style dataset of audio files: ``(waveform (channels, frames), class index)``."""

    def __init__(self, files, labels, classes, shaper: Shaper, who: str, cache=None):
        self.files, self.labels, self.classes = list(files), list(labels), list(classes)
        if all(isinstance(y, int) for y in self.labels):
            self.targets = self.labels  # lets the kernel count classes without decoding audio
        self.shaper, self.who = shaper, who
        self.sample_rate = shaper.sample_rate
        self._cache = cache  # file -> prepared waveform, when the dataset was preloaded
        if shaper.frames is None:
            self.collate_fn = pad_collate  # clips of different lengths

    def __len__(self):
        return len(self.files)

    def facts(self) -> dict:
        """Data facts for renderers and analyzers (axes in seconds and Hz), beside the attributes
        models read by name."""
        return {"sample_rate": self.sample_rate}

    def __getitem__(self, i):
        path = self.files[i]
        if self._cache is not None:
            waveform = self.shaper.fit_length(self._cache[path])
        else:
            try:
                waveform = self.shaper(*audio_io.read(path), path)
            except BadAudio as exc:
                raise KernelError(f"{self.who}: {exc} (replace the file, or set on_bad = \"skip\" to leave "
                                  f"such files out)") from None
        label = self.labels[i]
        if isinstance(label, tuple):  # several 0/1 labels per clip (YesNo): a multilabel target
            import torch

            return waveform, torch.tensor(label, dtype=torch.float32)
        return waveform, label


def pad_collate(items):
    """Stack clips of different lengths, zero-padded at the end to the longest in the batch."""
    import torch

    longest = max(int(x.shape[-1]) for x, _ in items)
    inputs = torch.stack([torch.nn.functional.pad(x, (0, longest - int(x.shape[-1]))) for x, _ in items])
    targets = [y for _, y in items]
    return inputs, torch.stack(targets) if isinstance(targets[0], torch.Tensor) else torch.as_tensor(targets)


def make_splits(entries, classes, *, who: str, sample_rate=None, duration=None, channels="downmix",
                valid=0.2, test=0.0, seed=0, on_bad="error", preload=False, split_of=None, stratify=True) -> dict:
    """Check the files and return ``{"train": AudioClips, "valid": ..., ("test": ...)}``.

    entries: ``(file, class index)`` pairs. split_of: a function ``file -> "train"/"valid"/"test"``
    when the dataset has official splits; otherwise a split stratified by class, seeded.
    """
    if on_bad not in ON_BAD:
        raise KernelError(f"{who}: on_bad must be 'error' or 'skip', not {on_bad!r}")
    for name, value in (("valid", valid), ("test", test)):
        if not 0 <= value < 1:
            raise KernelError(f"{who}: {name} must be a fraction in [0, 1), not {value!r}")
    entries = sorted((str(f), y) for f, y in entries)
    if not entries:
        raise KernelError(f"{who}: no audio files found")
    probe = Shaper(sample_rate or 1, None, channels)  # only its channel rule is used here
    good, skipped, headers = [], [], {}
    for path, label in entries:
        try:
            header = audio_io.probe(path)
            probe.check_channels(header.channels, path)
            headers[path] = header
            good.append((path, label))
        except BadAudio as exc:
            if on_bad == "error":
                raise KernelError(f"{who}: {exc} (replace the file, or set on_bad = \"skip\" to leave such "
                                  f"files out)") from None
            skipped.append(str(exc))
    rates = sorted({h.sample_rate for h in headers.values()})
    if sample_rate is None:
        if len(rates) > 1:
            raise KernelError(f"{who}: the files have different sample rates ({', '.join(map(str, rates))} Hz); "
                              f"set sample_rate to resample them all to one")
        sample_rate = rates[0] if rates else 16000
    if int(sample_rate) <= 0:
        raise KernelError(f"{who}: sample_rate must be a positive number of Hz, not {sample_rate!r}")
    if channels == "keep":
        counts = sorted({h.channels for h in headers.values()})
        if len(counts) > 1:
            raise KernelError(f"{who}: with channels = \"keep\" the files must agree on the channel count; "
                              f"found {counts}")
    shaper = Shaper(int(sample_rate), duration, channels)
    cache = None
    if preload or on_bad == "skip":  # decode each file once: damaged files are found now, not mid-epoch
        cache, kept = {}, []
        for path, label in good:
            try:
                waveform = shaper.prepare(*audio_io.read(path), path)
            except BadAudio as exc:
                if on_bad == "error":
                    raise KernelError(f"{who}: {exc} (replace the file, or set on_bad = \"skip\" to leave "
                                      f"such files out)") from None
                skipped.append(str(exc))
                continue
            kept.append((path, label))
            if preload:
                cache[path] = waveform
        good = kept
        if not preload:
            cache = None
    if skipped:
        print(f"{who}: skipped {len(skipped)} bad audio file(s) of {len(entries)} (first, {skipped[0]})",
              file=sys.stderr)
    if not good:
        raise KernelError(f"{who}: none of the {len(entries)} audio files can be used (first, {skipped[0]})")
    parts = _assign(good, valid, test, seed, split_of, stratify)
    out = {}
    for name in ("train", "valid", "test"):
        chosen = parts.get(name)
        if not chosen:
            continue
        crop = "random" if name == "train" else "centre"
        ds = AudioClips([p for p, _ in chosen], [y for _, y in chosen], classes, shaper.with_crop(crop), who,
                        cache)
        ds.skipped = list(skipped)
        out[name] = ds
    if "train" not in out:
        raise KernelError(f"{who}: no file is left for training (valid={valid}, test={test})")
    return out


def _assign(good, valid, test, seed, split_of, stratify=True) -> dict:
    import random

    parts: dict[str, list] = {"train": [], "valid": [], "test": []}
    if split_of is not None:
        for path, label in good:
            parts[split_of(path)].append((path, label))
        return parts
    rng = random.Random(seed)
    by_class: dict[int, list] = {}
    for entry in good:
        by_class.setdefault(entry[1] if stratify else 0, []).append(entry)
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_valid = int(round(len(members) * valid))
        n_test = int(round(len(members) * test))
        if valid > 0 and len(members) > 1:
            n_valid = max(1, n_valid)
        parts["valid"] += members[:n_valid]
        parts["test"] += members[n_valid:n_valid + n_test]
        parts["train"] += members[n_valid + n_test:]
    return parts


def audio_files(folder) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in audio_io.EXTENSIONS)


def folder_dataset(root: str, sample_rate: int | None = None, duration: float | None = None,
                   channels: str = "downmix", valid: float = 0.2, test: float = 0.0, seed: int = 0,
                   on_bad: str = "error", preload: bool = False):
    """Audio files in one sub-folder per class (``root/dog/1.wav``, ``root/cat/7.flac``).

    Args:
        root: the folder holding one sub-folder per class; WAV, FLAC and OGG files inside.
        sample_rate: resample every clip to this rate in Hz (unset: the files' own, which must agree).
        duration: crop or pad every clip to this many seconds (random crop for training, centre
            otherwise); unset keeps whole clips and pads each batch to its longest.
        channels: "downmix" (average into mono), "mono" (a stereo file is bad input) or "keep".
        valid: fraction of each class held out for validation (the dataset splits itself).
        test: fraction of each class held out for testing.
        seed: seed of the split.
        on_bad: "error" stops at the first unreadable, truncated or empty file; "skip" leaves such
            files out and prints how many.
        preload: decode and resample every file once, keep them in memory.
    """
    who = "audio.folder"
    base = Path(root).expanduser()
    if not base.is_dir():
        raise KernelError(f"{who}: folder not found: {base} (make one sub-folder of audio files per class)")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and audio_files(d))
    if not classes:
        raise KernelError(f"{who}: {base} holds no sub-folder with audio files "
                          f"({', '.join(audio_io.EXTENSIONS[:3])}); make one sub-folder per class")
    entries = [(f, i) for i, c in enumerate(classes) for f in audio_files(base / c)]
    return make_splits(entries, classes, who=who, sample_rate=sample_rate, duration=duration,
                       channels=channels, valid=valid, test=test, seed=seed, on_bad=on_bad, preload=preload)
