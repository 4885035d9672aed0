"""The portable-preprocessing protocol across plugins: what a transform's ``portable()`` says, run by
plugin-onnx's NumPy runtime, gives the arrays the torch transform gives.

First each describable transform alone, on synthetic inputs (fast); then real runs of the three
examples (shortened): their raw validation samples through ``loaded.transforms`` and
``loaded.preprocess`` against the runtime on the same samples, and through files (PNG, WAV) read by
``read_image`` / ``read_audio``.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import kernel
from kernel.data import apply, root
from plugin_onnx import portable as P

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-5


def described(transforms) -> list[dict]:
    steps = [t.portable() for t in transforms]
    assert all(isinstance(s, dict) for s in steps), steps
    P.check_steps(steps)
    return steps


# -- each transform alone -----------------------------------------------------------------------------

VISION = [
    ("vision.Resize", {"size": 32}), ("vision.Resize", {"size": 5}), ("vision.Resize", {"size": [9, 20]}),
    ("vision.Resize", {"size": 12, "max_size": 15}), ("vision.Resize", {"size": 7, "antialias": False}),
    ("vision.Resize", {"size": [11, 6], "interpolation": "bicubic"}),
    ("vision.Resize", {"size": [11, 6], "interpolation": "bicubic", "antialias": False}),
    ("vision.Resize", {"size": [23, 5], "interpolation": "nearest"}),
    ("vision.Resize", {"size": 17, "interpolation": "nearest-exact"}),
    ("vision.CenterCrop", {"size": 6}), ("vision.CenterCrop", {"size": [15, 4]}),
    ("vision.Pad", {"padding": 2}), ("vision.Pad", {"padding": [1, 3], "fill": 0.5}),
    ("vision.Pad", {"padding": [1, 2, 3, 0], "padding_mode": "reflect"}),
    ("vision.Pad", {"padding": 3, "padding_mode": "edge"}),
    ("vision.Pad", {"padding": [2, 1], "padding_mode": "symmetric"}),
    ("vision.Grayscale", {}), ("vision.Grayscale", {"num_output_channels": 3}), ("vision.RGB", {}),
    ("vision.Normalize", {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}),
    ("vision.Normalize", {"mean": [0.4], "std": [0.2]}),
    ("vision.ToDtype", {"dtype": "float32", "scale": True}), ("vision.Identity", {}), ("vision.ToImage", {}),
]


@pytest.mark.parametrize("use, params", VISION, ids=[f"{u}{p}" for u, p in VISION])
def test_vision_transform_and_its_description_agree(use, params):
    for shape in [(3, 10, 14), (1, 8, 8)] if len(params.get("mean", [0])) == 1 else [(3, 10, 14)]:
        check_vision(use, params, np.random.default_rng(0).random(shape, dtype=np.float32))


def check_vision(use: str, params: dict, x: np.ndarray):
    t = kernel.create(use, **params)
    (step,) = described([t])
    want = t(torch.from_numpy(x.copy())).numpy()
    got = P.apply_steps([step], x)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_random_augmentations_are_skipped_at_prediction_and_the_rest_say_they_cannot():
    flip = kernel.create("vision.RandomHorizontalFlip")
    assert flip.portable() == {"step": "identity", "augmentation": "RandomHorizontalFlip"}
    jitter = kernel.create("vision.RandomApply", transforms=[{"use": "vision.ColorJitter", "brightness": 0.3}])
    assert jitter.portable()["step"] == "identity"
    # a size or content no untouched image has: not describable, so predict refuses the export's steps
    for use, params in [("vision.RandomCrop", {"size": 4}), ("vision.RandomResizedCrop", {"size": 4}),
                        ("vision.RandomRotation", {"degrees": 10, "expand": True}),
                        ("vision.GaussianBlur", {"kernel_size": 3}),
                        ("vision.Resize", {"size": 4, "interpolation": "lanczos"}),
                        ("vision.ToDtype", {"dtype": "uint8"}),
                        ("vision.Lambda", {"lambd": "math:floor"})]:
        assert kernel.create(use, **params).portable() is None, use
    assert kernel.create("vision.Normalize").portable() is None  # "auto", not fitted yet


TEXTS = ["The film's \"best\" moments (and worst!): a mess; really?", "", "  spaces\tand\nlines  ",
         "Ünïcödé TEXT, with <br />breaks. And dots...", "don't", "x"]


@pytest.mark.parametrize("use, params", [("text.basic_english", {}), ("text.whitespace", {}),
                                         ("text.whitespace", {"lower": True}), ("text.char", {}),
                                         ("text.char", {"lower": True})])
def test_word_and_character_tokenizers(use, params):
    t = kernel.create(use, **params)
    steps = described([t])
    for text in TEXTS:
        assert P.apply_steps(steps, text) == t(text), text


@pytest.mark.parametrize("use", ["text.bpe", "text.wordpiece", "text.unigram"])
def test_subword_tokenizers_need_the_tokenizers_library(use):
    t = kernel.create(use, vocab_size=60, min_frequency=1)
    assert t.portable() is None  # not trained yet
    t.fit([(text, 0) for text in TEXTS * 3])
    steps = described([t])
    assert steps[0]["step"] == "hf_tokenizer"
    for text in TEXTS + ["unseen words here"]:
        assert P.apply_steps(steps, text) == t(text)


@pytest.mark.parametrize("params", [{}, {"max_length": 5}, {"add_bos": True, "add_eos": True, "max_length": 4},
                                    {"add_eos": True}, {"min_freq": 2}])
def test_vocabulary_and_padding(params):
    tokenizer = kernel.create("text.basic_english")
    vocab = kernel.create("text.vocab", **params)
    vocab.fit([(tokenizer(text), 0) for text in TEXTS * 2])
    steps = described([tokenizer, vocab, vocab.collate_fn])
    texts = TEXTS + ["never seen before", ""]
    ids = [P.apply_steps(steps, text) for text in texts]
    for text, got in zip(texts, ids):
        np.testing.assert_array_equal(got, vocab(tokenizer(text)).numpy())
    for batch in (texts, ["", ""], texts[:1]):
        want, _ = vocab.collate_fn([(vocab(tokenizer(t)), 0) for t in batch])
        got = P.collate(steps, [P.apply_steps(steps, t) for t in batch])
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == want[name].numpy().dtype, name
            np.testing.assert_array_equal(got[name], want[name].numpy(), err_msg=name)


def test_audio_resample_and_gain():
    x = np.random.default_rng(0).standard_normal((2, 4001)).astype(np.float32) * 0.3
    for use, params in [("audio.Resample", {"orig_freq": 16000, "new_freq": 8000}),
                        ("audio.Resample", {"orig_freq": 8000, "new_freq": 22050}),
                        ("audio.Vol", {"gain": 3.0}), ("audio.Vol", {"gain": -6.0, "gain_type": "db"}),
                        ("audio.Vol", {"gain": 4.0, "gain_type": "power"})]:
        t = kernel.create(use, **params)
        want = t(torch.from_numpy(x)).numpy()
        got = P.apply_steps(described([t]), x)
        assert got.shape == want.shape, use
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=use)
    assert getattr(kernel.create("audio.MelSpectrogram", sample_rate=8000), "portable", None) is None


# -- real runs ------------------------------------------------------------------------------------------

SHORT = {
    "quickstart": {"trainer.epochs": 1, "models": [{"use": "vision.simple_cnn"}]},
    "text_sentiment": {"trainer.epochs": 1, "models": [{"use": "text.embedding_bag", "params": {"embed_dim": 16}}]},
    "spoken_digits": {"trainer.epochs": 1, "trainer.batch_size": 8, "dataset.params.voices": ["en", "en-us"],
                      "dataset.params.rates": [140, 210], "dataset.params.pitches": [50],
                      "models": [{"use": "audio.m5"}]},
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One workspace, a run of each shortened example: {example: kernel.load(run)}."""
    home = tmp_path_factory.mktemp("portable-workspace")
    out = {}
    for example, overrides in SHORT.items():
        workflow = kernel.Workflow.from_file(ROOT / "examples" / f"{example}.toml").with_overrides(overrides)
        (result,) = workflow.run(workspace=home, quiet=True, artifacts=False)
        out[example] = kernel.load(result.id, workspace=home)
    return out


@pytest.mark.slow
def test_digits_raw_samples_and_png_files(loaded, tmp_path):
    from PIL import Image

    run = loaded["quickstart"]
    steps = described(run.transforms)
    assert [s["step"] for s in steps] == ["resize", "normalize"]
    raw = [x for x, _ in run.samples("valid", count=16, raw=True)]
    arrays = [x.numpy() for x in raw]
    for x, array in zip(raw, arrays):
        want, _ = apply(run.transforms, [], x, torch.tensor(0))
        np.testing.assert_allclose(P.apply_steps(steps, array), want.numpy(), atol=ATOL, rtol=0)
    batch = P.collate(steps, [P.apply_steps(steps, a) for a in arrays])
    np.testing.assert_allclose(batch, run.preprocess(raw).numpy(), atol=ATOL, rtol=0)

    # through a file: the PNG holds the digit as bytes; read_image decodes it as the vision plugin would
    path = tmp_path / "digit.png"
    Image.fromarray(np.round(arrays[0][0] * 255).astype(np.uint8), "L").save(path)
    decoded = P.read_image(path, channels=1)
    assert decoded.shape == arrays[0].shape
    np.testing.assert_allclose(decoded, arrays[0], atol=0.5 / 255 + 1e-7)
    want = run.preprocess([torch.from_numpy(decoded)]).numpy()
    np.testing.assert_allclose(P.collate(steps, [P.apply_steps(steps, decoded)]), want, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_text_raw_samples(loaded):
    run = loaded["text_sentiment"]
    steps = described([*run.transforms, run.collate_fn])
    assert [s["step"] for s in steps] == ["tokenize", "vocab", "pad_tokens"]
    texts = [x for x, _ in run.samples("valid", count=32, raw=True)] + ["", "an unseenword here !"]
    want = run.preprocess(texts)
    got = P.collate(steps, [P.apply_steps(steps, t) for t in texts])
    assert set(got) == set(want) == {"input_ids", "padding_mask", "lengths"}
    for name in want:
        np.testing.assert_array_equal(got[name], want[name].numpy(), err_msg=name)
    # a graph with a fixed sequence axis: the same rows, padded to the vocabulary's max_length
    fixed = P.collate(steps, [P.apply_steps(steps, t) for t in texts], pad_to=64)
    width = want["input_ids"].shape[1]
    assert fixed["input_ids"].shape == (len(texts), 64)
    np.testing.assert_array_equal(fixed["input_ids"][:, :width], want["input_ids"].numpy())
    assert (fixed["input_ids"][:, width:] == steps[2]["padding_index"]).all() and fixed["padding_mask"][:, width:].all()


def write_wav16(path, waveform: np.ndarray, rate: int):
    ints = np.clip(np.round(waveform.T * 32768), -32768, 32767).astype("<i2")  # read back as int / 32768
    with wave.open(str(path), "wb") as w:
        w.setnchannels(waveform.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())


@pytest.mark.slow
def test_audio_validation_clips_through_wav_files(loaded, tmp_path):
    import soundfile

    run = loaded["spoken_digits"]
    assert described(run.transforms) == []  # the clip is shaped by the dataset, not by transforms
    rate, frames = int(run.facts["sample_rate"]), 8000
    shaper = root(run.data.raw["valid"]).shaper  # the audio plugin's validation shaping (torch)
    for i, (clip, _) in enumerate(run.samples("valid", count=3, raw=True)):
        clip = clip.numpy()
        assert clip.shape == (1, frames)
        same = tmp_path / f"same{i}.wav"
        write_wav16(same, clip, rate)
        got = P.read_audio(same, sample_rate=rate, channels=1, samples=frames)
        np.testing.assert_allclose(got, clip, atol=0.5 / 32768 + 1e-7)  # 16-bit quantisation
        # the clip as a stereo file at 22.05 kHz, shorter (centre-padded) or longer (centre-cropped)
        stereo = np.stack([clip[0], clip[0] * 0.5])
        stereo = stereo[:, 2000:7000] if i % 2 else np.tile(stereo, 3)
        other = tmp_path / f"other{i}.wav"
        soundfile.write(other, stereo.T, 22050, subtype="FLOAT")
        got = P.read_audio(other, sample_rate=rate, channels=1, samples=frames)
        data, file_rate = soundfile.read(other, dtype="float32", always_2d=True)
        want = shaper(torch.from_numpy(data.T.copy()), file_rate).numpy()
        assert got.shape == want.shape == (1, frames)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
