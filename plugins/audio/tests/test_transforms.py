"""torchaudio transforms by name: the table matches torchaudio, listing imports no torchaudio."""
import subprocess
import sys

import torch
import torchaudio

import kernel
from plugin_audio.names import NOT_OFFERED, TRANSFORMS


def test_every_torchaudio_transform_is_offered_or_said_why_not():
    assert set(TRANSFORMS) | set(NOT_OFFERED) == set(torchaudio.transforms.__all__)
    assert not set(TRANSFORMS) & set(NOT_OFFERED)
    names = {c.name for c in kernel.get_catalog().list("transform") if c.plugin == "audio"}
    assert names == {f"audio.{n}" for n in TRANSFORMS}


def test_listing_the_plugin_imports_no_torchaudio():
    code = ("import sys, plugin_audio.plugin as p\n"
            "for k in ('datasets','transforms','models','renderers','analyzers'): getattr(p, 'kernel_'+k)()\n"
            "print(sorted(m for m in ('torch','torchaudio','soundfile','numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_transform_built_by_name_is_torchaudios_own():
    wave = torch.randn(1, 8000)
    mel = kernel.create("audio.MelSpectrogram", sample_rate=8000, n_mels=32)
    expected = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_mels=32)(wave)
    assert torch.equal(mel(wave), expected)


def test_transform_parameters_are_torchaudios():
    catalog = kernel.get_catalog()
    params = {p.name for p in catalog.params(catalog.get("audio.MelSpectrogram"))}
    assert {"sample_rate", "n_fft", "n_mels", "hop_length"} <= params


def test_speed_gives_the_waveform_not_a_tuple():
    speed = kernel.create("audio.Speed", orig_freq=8000, factor=2.0)
    out = speed(torch.randn(1, 8000))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 4000)
