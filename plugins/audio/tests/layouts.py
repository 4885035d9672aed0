"""Tiny audio files in real formats and in the official dataset layouts (used by the tests, and
to make ``plugin_audio/samples``: ``python tests/layouts.py plugin_audio/samples``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    """A sine (frames, channels) with a little deterministic noise: distinct per frequency."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = amplitude * np.sin(2 * math.pi * freq * t) + 0.01 * np.sin(2 * math.pi * 37 * freq * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write(path, data, rate, fmt=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, format=fmt)
    return path


def folder(root, classes=("low", "high"), per_class=3, rate=8000, seconds=0.3, exts=(".wav", ".flac", ".ogg")):
    root = Path(root)
    for i, c in enumerate(classes):
        for j in range(per_class):
            write(root / c / f"{j}{exts[j % len(exts)]}", tone(220 * (i + 1) + 10 * j, seconds, rate), rate)
    return root


def speechcommands(root, words=("no", "yes"), rate=16000, seconds=0.25):
    base = Path(root) / "SpeechCommands" / "speech_commands_v0.02"
    for i, w in enumerate(words):
        for speaker in ("0a1b2c3d", "1b2c3d4e", "2c3d4e5f"):
            write(base / w / f"{speaker}_nohash_0.wav", tone(300 * (i + 1), seconds, rate), rate)
    write(base / "_background_noise_" / "white_noise.wav", tone(50, seconds, rate), rate)
    (base / "validation_list.txt").write_text("".join(f"{w}/1b2c3d4e_nohash_0.wav\n" for w in words))
    (base / "testing_list.txt").write_text("".join(f"{w}/2c3d4e5f_nohash_0.wav\n" for w in words))
    return Path(root)


def yesno(root, names=("0_1_0_0_1_0_1_1", "1_1_1_0_0_0_1_0", "0_0_0_1_1_1_0_1", "1_0_1_0_1_0_1_0"),
          rate=8000, seconds=0.2):
    for i, n in enumerate(names):
        write(Path(root) / "waves_yesno" / f"{n}.wav", tone(200 + 50 * i, seconds, rate), rate)
    return Path(root)


def gtzan(root, genres=("blues", "rock"), rate=8000, seconds=0.3):
    for i, g in enumerate(genres):
        for j in range(3):
            write(Path(root) / "genres" / g / f"{g}.{j:05d}.wav", tone(150 * (i + 1) + 7 * j, seconds, rate), rate)
    return Path(root)


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1])
    speechcommands(out)
    yesno(out)
    gtzan(out)
