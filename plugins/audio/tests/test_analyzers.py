"""Analyzers: durations and sample rate, loudness, clipping and silence, streamed split by split."""
import math

import pytest
import torch
from PIL import Image

import kernel
import layouts
from plugin_audio.analyzers import Durations, Loudness
from plugin_audio.datasets import folder_dataset

RATE = 8000


def analyse(analyzer, splits: dict, rate=RATE):
    """Drive an analyzer as the kernel does: start, one update per chunk of each split, finish."""
    analyzer.start({"splits": {k: len(v) for k, v in splits.items()}, "classes": None,
                    "facts": {"sample_rate": rate} if rate else {}, "tags": ("audio",)})
    for name, items in splits.items():
        for start in range(0, len(items), 2):  # small chunks: the statistics must add up across updates
            chunk = items[start:start + 2]
            analyzer.update({"split": name, "inputs": [x for x, _ in chunk], "targets": [y for _, y in chunk]})
    report = analyzer.finish()
    assert isinstance(report, kernel.Report)
    return report


def test_durations_and_zero_padding_per_split(tmp_path):
    layouts.write(tmp_path / "a" / "short.wav", layouts.tone(200, 0.1, RATE), RATE)
    layouts.write(tmp_path / "a" / "long.wav", layouts.tone(200, 0.3, RATE), RATE)
    layouts.write(tmp_path / "b" / "exact.wav", layouts.tone(300, 0.2, RATE), RATE)
    train = folder_dataset(str(tmp_path), duration=0.2, valid=0.0)["train"]
    report = analyse(Durations(), {"train": [train[i] for i in range(len(train))]})
    row = report.table[0]
    assert row["split"] == "train" and row["clips"] == 3
    assert row["shortest (s)"] == row["longest (s)"] == 0.2  # the dataset crops and pads to 0.2 s
    assert row["zero padding"] == pytest.approx(0.1 / 0.6, abs=0.01)  # 0.1 s of padding in 0.6 s
    assert report.values["sample_rate"] == RATE and report.values["train.mean_duration_s"] == 0.2


def test_mostly_padding_suggests_a_shorter_duration(tmp_path):
    for j in range(2):
        layouts.write(tmp_path / "a" / f"{j}.wav", layouts.tone(200, 0.1, RATE), RATE)
    train = folder_dataset(str(tmp_path), duration=1.0, valid=0.0)["train"]
    report = analyse(Durations(), {"train": [train[0], train[1]]})
    assert report.table[0]["zero padding"] == pytest.approx(0.9, abs=0.01)
    assert 0.1 <= report.suggestions["dataset.duration"] < 1.0


def test_durations_without_a_rate_are_in_samples_and_split_apart():
    clips = {"train": [(torch.ones(1, 100), 0), (torch.ones(1, 300), 1)], "valid": [(torch.ones(1, 50), 0)]}
    report = analyse(Durations(), clips, rate=None)
    by_split = {r["split"]: r for r in report.table}
    assert by_split["train"]["shortest (samples)"] == 100 and by_split["train"]["longest (samples)"] == 300
    assert by_split["valid"]["mean (samples)"] == 50 and report.values["sample_rate"] == "unknown"


def test_loudness_clipping_and_silence_shares():
    sine = torch.from_numpy(layouts.tone(200, 0.5, RATE, amplitude=0.5).T.copy())
    clipped = (3 * sine).clamp(-1, 1)  # overdriven: full scale over much of each period
    half_silent = torch.cat([torch.zeros(1, 2000), sine[:, :2000]], dim=1)
    report = analyse(Loudness(), {"train": [(sine, 0), (clipped, 1)], "valid": [(half_silent, 0)]})
    rows = {r["split"]: r for r in report.table}
    rms = float(sine.pow(2).mean().sqrt())
    assert rows["train"]["quietest (dBFS)"] == pytest.approx(20 * math.log10(rms), abs=0.01)
    assert rows["train"]["peak"] == 1.0 and rows["train"]["clips with clipping"] == 1
    expected_clipped = float((clipped.abs() >= 0.999).float().mean()) / 2  # one clip of two
    assert rows["train"]["clipped samples"] == pytest.approx(expected_clipped, abs=1e-5) and expected_clipped > 0.1
    near_zero = float((sine[:, :2000].abs() < 1e-3).float().mean())  # the sine's own zero crossings
    assert rows["valid"]["silent samples"] == pytest.approx(0.5 + near_zero / 2, abs=1e-4)
    assert rows["valid"]["clipped samples"] == 0
    assert report.values["valid.silence"] == rows["valid"]["silent samples"]
    assert isinstance(report.figure, Image.Image)  # the histogram of clip levels


def test_inputs_that_are_not_waveforms_are_counted_not_misread():
    spectrogram = torch.rand(1, 64, 20)
    report = analyse(Loudness(), {"train": [(spectrogram, 0), (torch.zeros(1, 800), 0)]})
    assert report.values["not_waveforms"] == 1 and report.table[0]["clips"] == 1


def test_analyzers_see_raw_waveforms_and_run_for_audio_datasets():
    assert Durations.raw and Loudness.raw  # before the workflow's transforms (a mel spectrogram...)
    tags = {c.name: c.tags for c in kernel.get_catalog().list("analyzer") if c.plugin == "audio"}
    assert set(tags) == {"audio.durations", "audio.loudness"} and all("audio" in t for t in tags.values())
