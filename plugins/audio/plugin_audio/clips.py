"""From a decoded file to a model's input: channels, sample rate, fixed duration.

Why cropping lives here and not in a transform: the kernel applies the same transforms to every
split, so a transform cannot know whether a sample is for training (crop at random: a free
augmentation) or for validation (crop the centre: the same score every epoch). The audio datasets
return their splits themselves, each with its own :class:`Shaper` (``crop="random"`` for train,
``"centre"`` for valid and test).
"""
from __future__ import annotations

from kernel import KernelError

from .io import BadAudio

CHANNELS = ("downmix", "mono", "keep")
CROPS = ("random", "centre")


class Shaper:
    """Downmix (or check) channels, resample to ``sample_rate``, crop or pad to ``duration`` seconds.

    channels: "downmix" averages the channels into one; "mono" expects mono files (a stereo file is
    bad input); "keep" keeps every channel (the files must agree on the count).
    """

    def __init__(self, sample_rate: int, duration: float | None = None, channels: str = "downmix",
                 crop: str = "centre"):
        if channels not in CHANNELS:
            raise KernelError(f"channels must be one of {', '.join(CHANNELS)}, not {channels!r}")
        if crop not in CROPS:
            raise KernelError(f"crop must be 'random' or 'centre', not {crop!r}")
        if duration is not None and duration <= 0:
            raise KernelError(f"duration must be a positive number of seconds (or unset), not {duration!r}")
        self.sample_rate, self.duration, self.channels, self.crop = int(sample_rate), duration, channels, crop
        self.frames = None if duration is None else max(1, int(round(duration * self.sample_rate)))
        self._resamplers: dict = {}

    def with_crop(self, crop: str) -> "Shaper":
        return Shaper(self.sample_rate, self.duration, self.channels, crop)

    def check_channels(self, channels: int, path):
        if self.channels == "mono" and channels != 1:
            raise BadAudio(path, f"has {channels} channels where mono is expected (set channels = \"downmix\" "
                                 f"to average them)")

    def prepare(self, waveform, rate: int, path=""):
        """Channels and sample rate (deterministic: what a preloading dataset keeps in memory)."""
        self.check_channels(int(waveform.shape[0]), path)
        if self.channels == "downmix" and waveform.shape[0] > 1:
            waveform = waveform.mean(0, keepdim=True)
        if rate != self.sample_rate:
            waveform = self._resampler(rate)(waveform)
        return waveform

    def fit_length(self, waveform):
        """Crop or pad the last axis to the fixed number of frames (random or centred)."""
        if self.frames is None:
            return waveform
        import torch

        n, want = int(waveform.shape[-1]), self.frames
        if n == want:
            return waveform
        room = abs(n - want)
        start = int(torch.randint(0, room + 1, ())) if self.crop == "random" else room // 2
        if n > want:
            return waveform[..., start:start + want]
        return torch.nn.functional.pad(waveform, (start, room - start))

    def __call__(self, waveform, rate: int, path=""):
        return self.fit_length(self.prepare(waveform, rate, path))

    def _resampler(self, rate: int):
        # One torchaudio Resample per source rate: its sinc kernel is computed once, not per clip.
        r = self._resamplers.get(rate)
        if r is None:
            import torchaudio

            r = self._resamplers[rate] = torchaudio.transforms.Resample(rate, self.sample_rate)
        return r
