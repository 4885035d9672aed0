"""Renderers: the sample as a WAV (a player in the report), a waveform plot and a spectrogram in dB
with axes in seconds and Hz, written as PNGs."""
import io

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import kernel
import layouts
from plugin_audio.renderers import SoundRenderer, SpectrogramRenderer, WaveformRenderer

RATE = 8000


def chirp(seconds=0.5, rate=RATE):
    return torch.from_numpy(layouts.tone(440, seconds, rate).T.copy())  # (1, frames)


def context(rate=RATE, **facts):
    return {"input": None, "target": torch.tensor(1), "prediction": None, "classes": ["low", "high"],
            "facts": {"sample_rate": rate, **facts}}


def meta(t, role="input", tags=("audio",)):
    return {"shape": tuple(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "role": role, "tags": tags,
            "classes": None}


def saved_png(image, path):
    """What a report or `kernel render` does with a rendered image: write it, read it back."""
    image.save(path)
    back = Image.open(path)
    assert back.format == "PNG" and back.size[0] > 200 and back.size[1] > 100
    pixels = np.asarray(back.convert("L"))
    assert pixels.std() > 10  # something is drawn, not a blank canvas
    return back


def the_image(fig):
    ax = fig.axes[0]
    return ax, ax.images[0]


def test_waveform_is_a_png_with_time_in_seconds(tmp_path):
    wave, r = chirp(0.5), WaveformRenderer()
    saved_png(r.render(wave, context()), tmp_path / "wave.png")
    fig = r.figure(wave, context())
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.get_xlim()[1] == pytest.approx(0.5, abs=1e-3)
    assert "label: high" in ax.get_title() and "8000 Hz" in ax.get_title()
    assert np.allclose(ax.lines[0].get_ydata(), wave[0].numpy())


def test_waveform_without_a_sample_rate_is_drawn_in_samples():
    fig = WaveformRenderer().figure(chirp(0.5), {"facts": {}})
    assert fig.axes[0].get_xlabel() == "sample" and fig.axes[0].get_xlim()[1] == pytest.approx(3999)


def test_stereo_waveform_gets_one_plot_per_channel():
    stereo = torch.from_numpy(layouts.tone(300, 0.2, RATE, channels=2).T.copy())
    fig = WaveformRenderer().figure(stereo, context())
    assert [ax.get_ylabel() for ax in fig.axes] == ["ch 0", "ch 1"]


def test_power_spectrogram_is_drawn_in_db_with_seconds_and_hz(tmp_path):
    spectrogram = kernel.create("audio.Spectrogram")  # n_fft 400, hop 200, power 2
    power = spectrogram(chirp(0.5))
    facts = spectrogram.facts()
    r = SpectrogramRenderer()
    saved_png(r.render(power, context(**facts)), tmp_path / "spec.png")
    fig = r.figure(power, context(**facts))
    ax, image = the_image(fig)
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
    left, right, bottom, top = image.get_extent()
    assert right == pytest.approx(power.shape[-1] * 200 / RATE) and top == RATE / 2
    assert np.allclose(image.get_array(), 10 * torch.log10(power[0].clamp_min(1e-10)).numpy(), atol=1e-4)
    assert fig.axes[-1].get_ylabel() == "dB"  # the colour bar
    # the tone is where the axis says: the loudest row sits at 440 Hz
    loudest = int(power[0].mean(-1).argmax())
    assert bottom + (loudest + 0.5) * (top - bottom) / power.shape[-2] == pytest.approx(440, abs=RATE / 400)


def test_complex_stft_is_scored_first_and_drawn_as_power_in_db(tmp_path):
    stft = kernel.create("audio.Spectrogram", power=None)(chirp(0.5))
    assert stft.is_complex()
    r = SpectrogramRenderer()
    assert r.score(meta(stft)) > WaveformRenderer().score(meta(stft)) and r.score(meta(stft)) > 0.9
    saved_png(r.render(stft, context()), tmp_path / "stft.png")
    _, image = the_image(r.figure(stft, context()))
    assert np.allclose(image.get_array(), 10 * torch.log10(stft[0].abs().pow(2).clamp_min(1e-10)).numpy(),
                       atol=1e-4)


def test_mel_spectrogram_bands_are_labelled_in_hz():
    mel = kernel.create("audio.MelSpectrogram", sample_rate=RATE, n_mels=32)
    fig = SpectrogramRenderer().figure(mel(chirp(0.5)), context(**mel.facts()))
    ax = fig.axes[0]
    hz = [float(t.get_text()) for t in ax.get_yticklabels()]
    assert ax.get_ylabel() == "frequency (Hz, mel scale)"
    assert hz == sorted(hz) and 0 <= hz[0] < 200 and 2000 < hz[-1] < RATE / 2
    steps = np.diff(hz)
    assert steps[-1] > 2 * steps[0]  # mel bands widen with frequency


def test_decibels_are_not_taken_twice():
    to_db = kernel.create("audio.AmplitudeToDB")
    mel = kernel.create("audio.MelSpectrogram", sample_rate=RATE, n_mels=32)
    db = to_db(mel(chirp(0.5)))
    facts = {**mel.facts(), **to_db.facts()}
    _, image = the_image(SpectrogramRenderer().figure(db, context(**facts)))
    assert np.allclose(image.get_array(), db[0].numpy())


def test_a_waveform_can_also_be_drawn_as_a_spectrogram():
    r = SpectrogramRenderer()
    assert 0 < r.score(meta(chirp())) < WaveformRenderer().score(meta(chirp()))
    ax, image = the_image(r.figure(chirp(0.5), context()))
    assert ax.get_ylabel() == "frequency (Hz)" and image.get_extent()[1] == pytest.approx(0.5, abs=0.05)


def test_images_and_labels_are_not_taken_for_sound():
    image, label = torch.rand(3, 32, 32), torch.tensor(3)
    for r in (SoundRenderer(), WaveformRenderer(), SpectrogramRenderer()):
        assert r.score(meta(image, tags=("vision",))) == 0
        assert r.score(meta(label)) == 0
        assert r.score(meta(chirp(), role="target")) == 0


def test_the_sample_plays_as_a_wav_with_its_sample_rate(tmp_path):
    wave = chirp(0.25)
    media = SoundRenderer().render(wave, context())
    assert (media.kind, media.suffix) == ("audio", ".wav")
    data, rate = sf.read(io.BytesIO(media.data), always_2d=True)
    assert rate == RATE and data.shape == (2000, 1) and np.allclose(data[:, 0], wave[0].numpy(), atol=1e-3)
    assert media.save(tmp_path / "0_input.png") == tmp_path / "0_input.wav"  # the suffix is the media's
    saved_png(SoundRenderer().render(wave, {"facts": {}}), tmp_path / "wave.png")  # no rate: the plot


def test_sound_comes_first_for_audio_inputs_only():
    assert SoundRenderer().score(meta(chirp())) > WaveformRenderer().score(meta(chirp())) > 0
    assert SoundRenderer().score(meta(chirp(), tags=())) == 0  # without the audio tag: not known to be sound
    assert SoundRenderer().score(meta(chirp(), role="target")) == 0


def test_the_kernel_picks_these_renderers_for_audio_data(tmp_path):
    root = layouts.folder(tmp_path / "tones", seconds=0.5)
    for transforms, expected, suffix in (([], "audio.sound", ".wav"),
                                         ([{"use": "audio.MelSpectrogram", "sample_rate": RATE, "n_mels": 32}],
                                          "audio.spectrogram", ".png")):
        plan = kernel.prepare(kernel.Workflow(name="r", dataset={"use": "audio.folder", "params": {"root": str(root)},
                                                                 "transforms": transforms},
                                              models=[{"use": "audio.spectrogram_cnn"}]))
        entries = kernel.write_samples(plan, tmp_path / expected, count=2)
        assert [e["renderers"]["input"] for e in entries] == [expected, expected]
        assert all(e["input"].endswith(suffix) for e in entries)
        if suffix == ".wav":
            assert sf.read(tmp_path / expected / entries[0]["input"])[1] == plan.data.train.sample_rate
        else:
            saved_png(Image.open(tmp_path / expected / entries[0]["input"]), tmp_path / "copy.png")
        if transforms:
            assert plan.data.facts["spectrogram"]["n_mels"] == 32  # the transform's facts reach renderers
