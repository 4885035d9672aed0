"""Audio models: shapes, data facts filled by the kernel, and the data a model cannot take."""
import os

import pytest
import torch

from kernel import KernelError, prepare, forward, Workflow
from plugin_audio import models

SAMPLES = os.path.join(os.path.dirname(models.__file__), "samples")


def plan_for(*model_specs, **dataset):
    params = {"root": os.path.join(SAMPLES, "digits"), "duration": 1.0, **dataset}
    return prepare(Workflow(name="t", dataset={"use": "audio.folder", "params": params},
                            models=list(model_specs) or [{"use": "audio.m5"}]))


def test_facts_fill_sample_rate_classes_and_input_length():
    plan = plan_for({"use": "audio.m5"}, {"use": "audio.spectrogram_cnn"})
    assert plan.data.facts["input_shape"] == (1, 8000) and plan.data.facts["num_classes"] == 3
    _, filled = plan.model(1)
    assert filled["sample_rate"] == 8000 and filled["num_classes"] == 3 and filled["input_shape"] == (1, 8000)


def test_both_models_learn_the_shipped_digits_in_a_short_loop():
    torch.manual_seed(0)
    plan = plan_for({"use": "audio.m5"}, {"use": "audio.spectrogram_cnn"})
    for index in range(2):
        model, _ = plan.model(index)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(20):
            for x, y in plan.data.loader("train", 32):
                loss = torch.nn.functional.cross_entropy(forward(model, x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses  # it fits: the whole path is wired


def test_spectrogram_cnn_also_reads_given_spectrograms():
    model = models.spectrogram_cnn(num_classes=4, input_shape=(1, 32, 40))
    assert model(torch.randn(2, 1, 32, 40)).shape == (2, 4)


def test_torchaudio_models_give_one_score_per_class():
    x = torch.randn(2, 1, 16000)
    assert models.wav2letter(num_classes=5, input_shape=(1, 16000))(x).shape == (2, 5)
    assert models.wav2vec2(num_classes=5, sample_rate=16000, input_shape=(1, 16000))(x).shape == (2, 5)


def test_a_sample_rate_the_model_cannot_take_is_named():
    with pytest.raises(KernelError, match="audio.wav2vec2 takes 16000 Hz audio.*22050 Hz.*sample_rate = 16000"):
        models.wav2vec2(num_classes=3, sample_rate=22050)
    with pytest.raises(KernelError, match="cannot make 64 mel bands from 2000 Hz audio"):
        models.spectrogram_cnn(num_classes=3, input_shape=(1, 2000), sample_rate=2000)


def test_clips_too_short_for_m5_are_named_with_the_duration_needed():
    with pytest.raises(KernelError, match=r"audio.m5 needs clips of at least \d+ samples \(0.\d+ s at 8000 Hz\)"):
        models.m5(num_classes=3, input_shape=(1, 2000), sample_rate=8000)


def test_m5_on_a_spectrogram_says_which_model_reads_those():
    with pytest.raises(KernelError, match="reads .*waveforms.*use audio.spectrogram_cnn"):
        models.m5(num_classes=3, input_shape=(1, 32, 40))


def test_stereo_into_a_mono_model_is_named():
    with pytest.raises(KernelError, match="takes mono audio; the input has 2 channels"):
        models.wav2vec2(num_classes=3, input_shape=(2, 16000))
