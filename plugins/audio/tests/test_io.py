"""Reading audio through soundfile: formats, and every bad file named with its reason."""
import io

import numpy as np
import pytest
import soundfile as sf
import torch

import layouts
from plugin_audio import io as audio_io
from plugin_audio.io import BadAudio


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_reads_each_format_as_channels_first_float(tmp_path, ext):
    path = layouts.write(tmp_path / f"a{ext}", layouts.tone(440, 0.25, 16000, channels=2), 16000)
    header = audio_io.probe(path)
    assert (header.sample_rate, header.channels) == (16000, 2)
    x, rate = audio_io.read(path)
    assert rate == 16000 and x.dtype == torch.float32 and x.shape == (2, 4000)
    assert float(x.abs().max()) == pytest.approx(0.5, abs=0.05)


def test_junk_file_is_named_as_unreadable(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF1234this is not audio")
    with pytest.raises(BadAudio, match=r"junk\.wav: not a readable audio file"):
        audio_io.probe(path)


def test_truncated_wav_is_caught_from_its_header(tmp_path):
    path = layouts.write(tmp_path / "cut.wav", layouts.tone(440, 1.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadAudio, match=r"cut\.wav: truncated"):
        audio_io.probe(path)


def test_truncated_flac_fails_to_decode_with_the_file_named(tmp_path):
    path = layouts.write(tmp_path / "cut.flac", layouts.tone(440, 1.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadAudio, match=r"cut\.flac: cannot be decoded"):
        audio_io.read(path)


def test_zero_length_clip_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0,), np.float32), 16000)
    with pytest.raises(BadAudio, match=r"empty\.wav: zero-length clip"):
        audio_io.probe(path)


def test_wav_bytes_play_back_the_same_samples():
    x = torch.from_numpy(layouts.tone(300, 0.1, 8000).T.copy())
    data, rate = sf.read(io.BytesIO(audio_io.wav_bytes(x, 8000)), dtype="float32", always_2d=True)
    assert rate == 8000 and data.shape == (800, 1)
    assert np.allclose(data[:, 0], x[0].numpy(), atol=1e-3)
