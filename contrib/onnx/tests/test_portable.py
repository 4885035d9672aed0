"""The torch-free preprocessing runtime alone (plugin_onnx.portable): NumPy, Pillow and ``wave`` only.

Values are checked against hand-computed ones here; tests/test_portable.py checks them against the
torch transforms of real runs.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import wave

import numpy as np
import pytest
from PIL import Image

from plugin_onnx import portable as P
from plugin_onnx.portable import PortableError


def test_the_runtime_imports_no_torch():
    code = ("import sys, plugin_onnx.portable; "
            "print(','.join(m for m in ('torch', 'torchvision', 'torchaudio') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_steps_lists_every_step_and_an_unknown_one_is_named():
    assert {"identity", "resize", "center_crop", "pad", "normalize", "grayscale", "rgb", "tokenize", "hf_tokenizer",
            "vocab", "resample", "gain", "stack", "pad_tokens"} == set(P.STEPS)
    with pytest.raises(PortableError, match="unknown portable step 'sharpen'"):
        P.apply_steps([{"step": "normalize", "mean": [0], "std": [1]}, {"step": "sharpen"}], np.zeros((1, 2, 2)))
    with pytest.raises(PortableError, match="'resize' lacks its setting 'size'"):
        P.apply_steps([{"step": "resize"}], np.zeros((1, 2, 2)))
    with pytest.raises(PortableError, match="dict with a 'step' name"):
        P.apply_steps(["resize"], np.zeros((1, 2, 2)))


# -- images -----------------------------------------------------------------------------------------

def test_read_image_gives_float_chw_in_0_1(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(pixels, "L").save(tmp_path / "grey.png")
    grey = P.read_image(tmp_path / "grey.png", 1)
    assert grey.dtype == np.float32 and grey.shape == (1, 3, 4)
    np.testing.assert_array_equal(grey[0], pixels / np.float32(255))
    assert P.read_image(tmp_path / "grey.png", 3).shape == (3, 3, 4)  # grey repeated, as Pillow's "RGB"

    colour = np.stack([pixels, 255 - pixels, np.full_like(pixels, 7)], axis=-1)
    Image.fromarray(colour, "RGB").save(tmp_path / "colour.png")
    rgb = P.read_image(tmp_path / "colour.png", 3)
    np.testing.assert_array_equal(rgb, colour.transpose(2, 0, 1) / np.float32(255))
    luma = P.read_image(tmp_path / "colour.png", 1)  # Pillow's ITU-R 601 conversion
    assert luma.shape == (1, 3, 4) and 0 <= luma.min() and luma.max() <= 1

    Image.fromarray(colour, "RGB").convert("P").save(tmp_path / "palette.png")
    assert P.read_image(tmp_path / "palette.png", 3).shape == (3, 3, 4)
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit: precision kept, as the vision plugin
    np.testing.assert_allclose(P.read_image(tmp_path / "deep.png", 1)[0], deep / 65535.0, atol=1e-7)


def test_read_image_bad_files_are_named(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(PortableError, match=r"notes\.png: not an image"):
        P.read_image(tmp_path / "notes.png", 3)
    (tmp_path / "cut.png").write_bytes(_png_bytes()[:200])  # a download cut short
    with pytest.raises(PortableError, match=r"cut\.png: the image cannot be decoded"):
        P.read_image(tmp_path / "cut.png", 3)
    with pytest.raises(PortableError, match=r"missing\.png: file not found"):
        P.read_image(tmp_path / "missing.png", 3)
    with pytest.raises(PortableError, match="1, 3 or 4 channels"):
        P.read_image(tmp_path / "notes.png", 2)


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("shape, size, max_size, expected", [
    ((10, 15), 4, None, (4, 6)),        # the smaller edge gets size, the longer is truncated: 4 * 15 / 10
    ((15, 10), 4, None, (6, 4)),
    ((7, 7), 3, None, (3, 3)),
    ((10, 30), 4, 10, (3, 10)),         # the longer edge capped, the shorter follows: int(10 * 4 / 12)
    ((10, 15), [5, 9], None, (5, 9)),
    ((10, 15), [4], None, (4, 6)),
    ((10, 20), None, 8, (4, 8)),
])
def test_resized_size_follows_torchvision(shape, size, max_size, expected):
    assert P.resized_size(*shape, size, max_size) == expected


def test_resize_values():
    x = np.array([[[0.0, 1.0], [2.0, 3.0]]], dtype=np.float32)
    up = P.resize(x, [4, 4], "bilinear", antialias=False)
    # align_corners=False: outer pixels keep the edge value, inner ones are 1/4 - 3/4 blends
    np.testing.assert_allclose(up[0, 0], [0, 0.25, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(up[0, :, 0], [0, 0.5, 1.5, 2.0], atol=1e-6)
    np.testing.assert_allclose(P.resize(x, [4, 4], "bilinear", antialias=True), up, atol=1e-6)  # upscaling: same
    nearest = P.resize(x, [4, 4], "nearest")
    np.testing.assert_array_equal(nearest[0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    flat = np.full((3, 9, 9), 0.25, dtype=np.float32)  # every filter keeps a constant image constant
    for mode in ("bilinear", "bicubic", "nearest", "nearest-exact"):
        for aa in (True, False):
            out = P.resize(flat, [4, 6], mode, aa)
            assert out.shape == (3, 4, 6) and out.dtype == np.float32
            np.testing.assert_allclose(out, 0.25, atol=1e-6)
    down = P.resize(np.arange(8, dtype=np.float32)[None, None].repeat(2, 1), [2, 2], "bilinear", antialias=True)
    # antialiased 8 -> 2: a triangle twice the output pixel's width, cut at the edge and renormalised;
    # output 0 is centred at 2: inputs 0..5 weigh 5, 7, 7, 5, 3, 1 (/ 28)
    np.testing.assert_allclose(down[0, 0], [np.dot([5, 7, 7, 5, 3, 1], range(6)) / 28, 7 - 53 / 28], atol=1e-6)
    assert P.resize(flat, 9) is not None and P.resize(flat, 9).shape == (3, 9, 9)
    with pytest.raises(PortableError, match="interpolation 'lanczos'"):
        P.resize(flat, 4, "lanczos")


def test_center_crop_and_its_padding():
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    np.testing.assert_array_equal(P.center_crop(x, [3, 3])[0], x[0, 1:4, 1:4])
    np.testing.assert_array_equal(P.center_crop(x, [2, 2])[0], x[0, 2:4, 2:4])  # round(1.5) = 2
    padded = P.center_crop(np.ones((2, 2, 3), np.float32), [5, 4])
    assert padded.shape == (2, 5, 4)
    # padding (crop - size) // 2 before, the rest after: rows 1..2, column 0..2
    np.testing.assert_array_equal(padded[0], [[0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_pad_modes_and_fill():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    out = P.pad(np.concatenate([x, x]), [1, 0, 2, 1], fill=[7, 8])
    assert out.shape == (2, 3, 6)
    assert out[0, 0, 0] == 7 and out[1, -1, -1] == 8 and out[0, 0, 1] == 0
    np.testing.assert_array_equal(P.pad(x, [1, 1, 1, 1], mode="edge")[0, 0], [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(P.pad(x, [2, 0, 0, 0], mode="reflect")[0, 0], [2, 1, 0, 1, 2])
    np.testing.assert_array_equal(P.pad(x, [2, 0, 0, 0], mode="symmetric")[0, 0], [1, 0, 0, 1, 2])
    with pytest.raises(PortableError, match="3 fill values for an image with 1"):
        P.pad(x, [1, 1, 1, 1], fill=[1, 2, 3])


def test_normalize_grayscale_rgb():
    x = np.stack([np.full((2, 2), v, np.float32) for v in (0.2, 0.4, 0.6)])
    out = P.normalize(x, [0.2, 0.4, 0.6], [0.5, 0.5, 0.25])
    np.testing.assert_allclose(out, 0.0, atol=1e-7)
    np.testing.assert_allclose(P.normalize(x, [0.1], [0.5])[2], 1.0, atol=1e-6)  # one value for all channels
    with pytest.raises(PortableError, match="2 mean and 2 std values for an image with 3 channel"):
        P.normalize(x, [0, 0], [1, 1])
    grey = P.grayscale(x)
    np.testing.assert_allclose(grey, 0.2989 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, atol=1e-6)
    assert P.grayscale(x, 3).shape == (3, 2, 2) and P.rgb(grey).shape == (3, 2, 2) and P.rgb(x) is x
    with pytest.raises(PortableError, match="takes an image"):
        P.normalize(np.zeros(4), [0], [1])


def test_steps_in_order_then_stack():
    steps = [{"step": "resize", "size": 4}, {"step": "center_crop", "size": [4, 4]},
             {"step": "normalize", "mean": [0.5], "std": [0.5]},
             {"step": "identity", "augmentation": "RandomHorizontalFlip"}]
    images = [np.full((1, 8, 12), v, np.float32) for v in (0.0, 1.0)]
    batch = P.collate(steps, [P.apply_steps(steps, im) for im in images])
    assert batch.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(batch[:, 0, 0, 0], [-1.0, 1.0], atol=1e-6)
    with pytest.raises(PortableError, match="different shapes"):
        P.collate(None, [np.zeros((1, 2, 2)), np.zeros((1, 3, 3))])
    with pytest.raises(PortableError, match="no inputs"):
        P.collate(None, [])


# -- text -------------------------------------------------------------------------------------------

BASIC = {"step": "tokenize", "lower": True, "split": "whitespace",
         "replace": [["'", " '  "], ['"', ""], [".", " . "], ["<br />", " "], [",", " , "], ["(", " ( "],
                     [")", " ) "], ["!", " ! "], ["?", " ? "], [";", " "], [":", " "]]}
VOCAB = {"step": "vocab", "tokens": ["<unk>", "<pad>", "<bos>", "<eos>", "the", "film", "."], "unk_index": 0,
         "max_length": None, "add_bos": False, "bos_index": 2, "add_eos": False, "eos_index": 3}
PAD = {"step": "pad_tokens", "padding_index": 1, "min_width": 1, "mask_marks": "padding",
       "names": {"ids": "input_ids", "mask": "padding_mask", "lengths": "lengths"}}


def test_tokenize_rules():
    assert P.tokenize("The FILM's \"great\".<br />Yes!", **{k: v for k, v in BASIC.items() if k != "step"}) == \
        ["the", "film", "'", "s", "great", ".", "yes", "!"]
    assert P.tokenize("A b\tc", split="whitespace") == ["A", "b", "c"]
    assert P.tokenize("Ab c", lower=True, split="characters") == ["a", "b", " ", "c"]
    with pytest.raises(PortableError, match="takes text"):
        P.tokenize(b"bytes")


def test_vocab_numbers_tokens_with_bos_eos_and_truncation():
    tokens = ["the", "film", "rocks", "."]
    np.testing.assert_array_equal(P.vocab(tokens, VOCAB), [4, 5, 0, 6])
    assert P.vocab(tokens, VOCAB).dtype == np.int64
    both = {**VOCAB, "add_bos": True, "add_eos": True, "max_length": 4}
    np.testing.assert_array_equal(P.vocab(tokens, both), [2, 4, 5, 3])  # <bos> counted, <eos> kept at the end
    np.testing.assert_array_equal(P.vocab([], both), [2, 3])
    np.testing.assert_array_equal(P.vocab(tokens, {**VOCAB, "max_length": 2}), [4, 5])
    with pytest.raises(PortableError, match="whole text"):
        P.vocab("the film", VOCAB)


def test_pad_tokens_batches_like_padbatch():
    steps = [BASIC, VOCAB, PAD]
    ids = [P.apply_steps(steps, t) for t in ("The film.", "", "the")]
    batch = P.collate(steps, ids)
    np.testing.assert_array_equal(batch["input_ids"], [[4, 5, 6], [1, 1, 1], [4, 1, 1]])
    np.testing.assert_array_equal(batch["padding_mask"], [[False] * 3, [True] * 3, [False, True, True]])
    np.testing.assert_array_equal(batch["lengths"], [3, 0, 1])
    assert batch["input_ids"].dtype == np.int64 and batch["padding_mask"].dtype == bool
    empty = P.collate(PAD, [P.apply_steps(steps, "")])  # every text empty: one padding column remains
    np.testing.assert_array_equal(empty["input_ids"], [[1]])
    np.testing.assert_array_equal(empty["lengths"], [0])
    fixed = P.collate(PAD, ids, pad_to=2)  # a graph with a fixed sequence axis: padded, or truncated
    np.testing.assert_array_equal(fixed["input_ids"], [[4, 5], [1, 1], [4, 1]])
    np.testing.assert_array_equal(fixed["lengths"], [2, 0, 1])
    renamed = P.collate({**PAD, "names": {"ids": "tokens"}, "mask_marks": "tokens"}, ids)
    assert set(renamed) == {"tokens", "padding_mask", "lengths"} and renamed["padding_mask"][0].all()
    with pytest.raises(PortableError, match="not a batching step"):
        P.collate(VOCAB, ids)


def test_hf_tokenizer_step():
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    step = {"step": "hf_tokenizer", "tokenizer": tok.to_str()}
    assert P.apply_steps([step], "hello there") == ["hello", "[UNK]"]


# -- audio ------------------------------------------------------------------------------------------

def write_pcm(path, samples: np.ndarray, rate: int, width: int):
    """(channels, frames) floats in [-1, 1] as integer PCM of ``width`` bytes, with ``wave``."""
    scale = 2 ** (8 * width - 1)
    ints = np.clip(np.round(samples.T * scale), -scale, scale - 1).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    else:
        raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints.reshape(-1))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


def write_float_wav(path, samples: np.ndarray, rate: int, extensible: bool = False):
    """An IEEE-float WAV (``wave`` cannot write one): the RIFF chunks by hand."""
    channels = samples.shape[0]
    data = samples.T.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    if extensible:  # cbSize, valid bits, channel mask, then the sub-format GUID whose first two bytes are the tag
        fmt += struct.pack("<HHI", 22, 32, 0) + struct.pack("<H", 3) + bytes(14)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * t + c) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_audio_pcm_widths(tmp_path, width):
    x = tone(8000, 0.25)
    write_pcm(tmp_path / "a.wav", x, 8000, width)
    got = P.read_audio(tmp_path / "a.wav", 8000, 1, None)
    assert got.shape == (1, 2000) and got.dtype == np.float32
    np.testing.assert_allclose(got, x, atol=1.0 / 2 ** (8 * width - 1))


@pytest.mark.parametrize("extensible", [False, True])
def test_read_audio_float_wav_and_downmix(tmp_path, extensible):
    x = tone(8000, 0.25, channels=2)
    write_float_wav(tmp_path / "f.wav", x, 8000, extensible)
    np.testing.assert_array_equal(P.read_audio(tmp_path / "f.wav", 8000, 2, None), x)
    np.testing.assert_allclose(P.read_audio(tmp_path / "f.wav", 8000, 1, None), x.mean(0, keepdims=True), atol=1e-7)
    with pytest.raises(PortableError, match="has 2 channel"):
        P.read_audio(tmp_path / "f.wav", 8000, 3, None)


def test_read_audio_resamples_then_crops_or_pads_at_the_centre(tmp_path):
    write_float_wav(tmp_path / "t.wav", tone(16000, 1.0, freq=200), 16000)
    got = P.read_audio(tmp_path / "t.wav", 8000, 1, None)
    assert got.shape == (1, 8000)
    # a 200 Hz tone stays a 200 Hz tone (away from the edges, where the filter sees zeros)
    np.testing.assert_allclose(got[0, 200:-200], tone(8000, 1.0, freq=200)[0, 200:-200], atol=2e-3)
    up = P.read_audio(tmp_path / "t.wav", 22050, 1, None)
    assert up.shape == (1, 22050)

    ramp = np.arange(10, dtype=np.float32)[None] / 10
    np.testing.assert_array_equal(P.fit_length(ramp, 7), ramp[:, 1:8])  # room 3: one before, two after
    padded = P.fit_length(ramp, 13)  # room 3: one zero before, two after
    np.testing.assert_array_equal(padded[0], np.concatenate([[0], ramp[0], [0, 0]]))
    assert P.read_audio(tmp_path / "t.wav", 8000, 1, 6000).shape == (1, 6000)
    assert P.read_audio(tmp_path / "t.wav", 8000, 1, 9000).shape == (1, 9000)


def test_gain_step_clamps():
    out = P.apply_steps([{"step": "gain", "factor": 4.0}], np.array([[0.1, 0.5, -0.5]], np.float32))
    np.testing.assert_allclose(out, [[0.4, 1.0, -1.0]])


def test_read_audio_bad_files_are_named(tmp_path):
    (tmp_path / "notes.wav").write_text("just some text, long enough to have a header")
    with pytest.raises(PortableError, match=r"notes\.wav: not a (WAV|readable audio)"):
        P.read_audio(tmp_path / "notes.wav", 8000, 1, 8000)
    write_pcm(tmp_path / "whole.wav", tone(8000, 0.5), 8000, 2)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "whole.wav").read_bytes()[:3000])
    with pytest.raises(PortableError, match=r"cut\.wav: truncated: the header announces 8000 bytes"):
        P.read_audio(tmp_path / "cut.wav", 8000, 1, 8000)
    write_pcm(tmp_path / "empty.wav", np.zeros((1, 0), np.float32), 8000, 2)
    with pytest.raises(PortableError, match=r"empty\.wav: zero-length clip"):
        P.read_audio(tmp_path / "empty.wav", 8000, 1, 8000)
    (tmp_path / "nofmt.wav").write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVE")
    with pytest.raises(PortableError, match="'fmt ' or 'data' chunk is missing"):
        P.read_audio(tmp_path / "nofmt.wav", 8000, 1, 8000)
    with pytest.raises(PortableError, match=r"gone\.wav: file not found"):
        P.read_audio(tmp_path / "gone.wav", 8000, 1, 8000)
