"""The audio plugin's input path against the same path written by hand, in one process.

Both read the same clips from disk (WAV and FLAC, 1 s at 22,050 Hz, two classes), resample them to
16 kHz, crop or pad them to one second and turn them into a 64-band mel spectrogram:
- plugin: the workflow ``audio.folder`` (sample_rate, duration) + ``audio.MelSpectrogram``, read
  item by item from the kernel's training split (``plan.data.train[i]``: the kernel's split and
  transform wrappers, the plugin's checks and shaping);
- by hand: ``soundfile.read`` + ``torchaudio.functional.resample`` + ``torchaudio.transforms.MelSpectrogram``
  (the baseline of the ratio);
- by hand, cached resampler: the same with one ``torchaudio.transforms.Resample`` per source rate, as
  the plugin does (``functional.resample`` recomputes its sinc kernel on every call): this row shows
  what the kernel's and the plugin's wrappers cost on their own.
Rates are clips per second of CPU time of the process (it does not depend on what else the shared
machine runs), best of several interleaved passes; wall-clock rates are shown beside them.
Both paths must give the same spectrograms (checked on the validation clips, cropped at the centre).

Target (issue 7): ratio plugin / by hand at least 0.95.
Run: .venv/bin/python benchmarks/audio_pipeline.py [--clips N] [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from _rates import best_rates, print_rates  # noqa: E402  (beside this script)

SOURCE_RATE, RATE, SECONDS, N_MELS = 22050, 16000, 1.0, 64


def make_clips(folder: str, count: int) -> list[str]:
    """``count`` clips of 0.8 to 1.2 s (so both cropping and padding happen), half WAV, half FLAC."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        label = ("low", "high")[i % 2]
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        n = int(SOURCE_RATE * rng.uniform(0.8, 1.2))
        t = np.arange(n) / SOURCE_RATE
        x = 0.4 * np.sin(2 * np.pi * (200 + 300 * (i % 2) + 5 * i) * t) + 0.05 * rng.standard_normal(n)
        path = os.path.join(folder, label, f"{i:04d}.{'wav' if i % 4 < 2 else 'flac'}")
        sf.write(path, x.astype("float32"), SOURCE_RATE)
        files.append(path)
    return files


def plugin_path(folder: str):
    """The kernel's training and validation splits of the plugin's dataset, with the mel transform."""
    from kernel.build import prepare
    from kernel.workflow import Workflow

    plan = prepare(Workflow(name="bench", seed=0, models=[{"use": "audio.m5"}], dataset={
        "use": "audio.folder", "params": {"root": folder, "sample_rate": RATE, "duration": SECONDS, "valid": 0.1},
        "transforms": [{"use": "audio.MelSpectrogram", "sample_rate": RATE, "n_mels": N_MELS}]}))
    return plan.data.train, plan.data.valid


class ByHand:
    """What one writes without the plugin: read, downmix, resample, centre crop or pad, mel."""

    def __init__(self, files, cached: bool = False):
        import torchaudio

        self.files = files
        self.resample = torchaudio.transforms.Resample(SOURCE_RATE, RATE) if cached else None
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=RATE, n_mels=N_MELS)
        self.frames = int(RATE * SECONDS)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import soundfile as sf
        import torch
        import torchaudio.functional as F

        data, rate = sf.read(self.files[i], dtype="float32", always_2d=True)
        x = torch.from_numpy(data.T.copy()).mean(0, keepdim=True)
        x = self.resample(x) if self.resample is not None and rate == SOURCE_RATE else F.resample(x, rate, RATE)
        n = x.shape[-1]
        if n > self.frames:
            start = (n - self.frames) // 2
            x = x[..., start:start + self.frames]
        elif n < self.frames:
            left = (self.frames - n) // 2
            x = torch.nn.functional.pad(x, (left, self.frames - n - left))
        return self.mel(x), 0


def one_pass(dataset) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(len(dataset)):
        dataset[i]
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # one core each way: the shared machine's other work stays out of the ratio
    with tempfile.TemporaryDirectory() as folder:
        make_clips(folder, args.clips)
        train, valid = plugin_path(folder)
        paths = {"plugin": train, "by hand": ByHand(list(train.files)),
                 "by hand, cached resampler": ByHand(list(train.files), cached=True)}
        # same spectrograms (validation crops at the centre on every path)
        for cached in (False, True):
            hand_valid = ByHand(list(valid.files), cached)
            for i in range(len(valid)):
                assert torch.allclose(valid[i][0], hand_valid[i][0], rtol=1e-4, atol=1e-3), valid.files[i]
        for dataset in paths.values():
            one_pass(dataset)  # warm-up: imports, caches, the resampling kernel
        results = {name: [] for name in paths}
        for _ in range(args.repeats):  # interleaved: drifts in machine load hit every path alike
            for name, dataset in paths.items():
                results[name].append(one_pass(dataset))
    n = len(train)
    print(f"audio pipeline: {n} clips (0.8-1.2 s, {SOURCE_RATE} Hz WAV/FLAC) -> {RATE} Hz, {SECONDS:g} s, "
          f"{N_MELS} mel bands; best of {args.repeats} passes, 1 thread")
    print_rates(best_rates(results, n), "clips", also="by hand, cached resampler")

if __name__ == "__main__":
    main()
