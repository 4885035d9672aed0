"""A run's preprocessing without torch: the portable steps, read from an export's metadata, in NumPy.

``kernel predict MODEL.onnx INPUT...`` runs where torch is not installed, so the transforms a run
applied (written with torch, in other plugins) reach it as data: each transform that can describe
itself offers ``portable() -> {"step": NAME, ...settings}``, and this module re-implements every
step, to the same numbers (within float rounding), with NumPy, Pillow and the standard library.

- :func:`read_image` and :func:`read_audio` decode a file into the array a dataset would have given;
- :func:`apply_steps` runs the per-sample steps on it (an image array, or a text string -> ids);
- :func:`collate` makes the batch (stacked arrays, or padded token ids for text).

Nothing here imports torch or the kernel: this module must load in a torch-free process.
"""
from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np


class PortableError(Exception):
    """Input or steps that cannot be processed: the message names the file or the step."""


_REQUIRED = object()


def _setting(step: dict, key: str, default=_REQUIRED):
    if key in step:
        return step[key]
    if default is _REQUIRED:
        raise PortableError(f"step {step.get('step')!r} lacks its setting {key!r}: {step}")
    return default


# -- images -----------------------------------------------------------------------------------------

_IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
#: PIL modes whose values are not colours: made RGB(A) first, as the vision plugin does (images.py)
_CONVERT_MODES = {"P": "RGBA", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "1": "L"}
#: integer PIL modes deeper than 8 bits: the vision plugin divides these by 65535
_DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def read_image(path, channels: int) -> np.ndarray:
    """An image file as float32 (channels, H, W) in [0, 1], as the vision plugin's datasets give it.

    ``channels``: 1 (Pillow's "L" conversion), 3 ("RGB") or 4 ("RGBA"). 16-bit and float images keep
    their precision (divided by 65535, or kept as they are).
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in _IMAGE_MODES:
        raise PortableError(f"{path}: images are read with 1, 3 or 4 channels, not {channels}")
    if not Path(path).is_file():
        raise PortableError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            return _pixels(image, channels)
    except UnidentifiedImageError:
        raise PortableError(f"{path}: not an image (Pillow does not recognise the format)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or damaged data
        raise PortableError(f"{path}: the image cannot be decoded, it may be truncated or damaged ({exc})") from None


def _pixels(image, channels: int) -> np.ndarray:
    if image.mode in _DEEP_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        values = values if image.mode == "F" else values / 65535.0
        return np.repeat(values[None], channels, axis=0).astype(np.float32)
    if image.mode in _CONVERT_MODES:
        mode = "RGB" if image.mode == "P" and "transparency" not in image.info else _CONVERT_MODES[image.mode]
        image = image.convert(mode)
    array = np.asarray(image.convert(_IMAGE_MODES[channels]), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return (array.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)).copy()


def _image(x, step: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]  # (H, W): one channel, as the vision plugin reads it
    if array.ndim != 3:
        raise PortableError(f"step {step!r} takes an image (channels, height, width), not an array of "
                            f"shape {array.shape}")
    return array


def resized_size(height: int, width: int, size, max_size=None) -> tuple[int, int]:
    """The output (height, width) of torchvision's Resize: an int ``size`` is the smaller edge, the
    longer one follows the aspect ratio, truncated (torchvision's rule); ``max_size`` caps the longer."""
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    short, long = (width, height) if width <= height else (height, width)
    if size is None:
        if not isinstance(max_size, int):
            raise PortableError("step 'resize': size is None, so max_size must be an integer")
        new_short, new_long = int(max_size * short / long), max_size
    elif isinstance(size, int):
        new_short, new_long = size, int(size * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    else:
        return int(size[0]), int(size[1])
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.75: PyTorch's bicubic; -0.5: its antialiased one, as PIL)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _interpolation_matrix(n_in: int, n_out: int, mode: str, antialias: bool) -> np.ndarray:
    """(n_out, n_in) weights: one output row or column as a weighted sum of input ones, the way
    PyTorch's ``interpolate`` (align_corners=False) computes it on the CPU."""
    w = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    # PyTorch keeps the scale and the source positions in float32: matching that rounding keeps the
    # results within 1e-6 of its (and nearest's floor picks the same pixel)
    scale = np.float32(n_in) / np.float32(n_out)
    if mode in ("nearest", "nearest-exact"):
        offset = np.float32(0.5 if mode == "nearest-exact" else 0.0)
        src = np.floor((rows.astype(np.float32) + offset) * scale).astype(np.int64)
        if mode == "nearest" and n_out == 2 * n_in:
            src = rows >> 1
        w[rows, np.minimum(src, n_in - 1)] = 1.0
        return w
    scale = float(scale)
    if antialias and mode in ("bilinear", "bicubic"):
        # separable filter over every input the output pixel covers (PIL's algorithm, as PyTorch's _aa kernels)
        size = 2 if mode == "bilinear" else 4
        support = size / 2 * scale if scale >= 1 else size / 2
        invscale = 1 / scale if scale >= 1 else 1.0
        for i in rows:
            center = float(np.float32(scale * (i + 0.5)))
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), n_in)
            x = (np.arange(lo, hi) - center + 0.5) * invscale
            k = np.maximum(0.0, 1 - np.abs(x)) if mode == "bilinear" else _cubic(x, -0.5)
            total = k.sum()
            w[i, lo:hi] = k / total if total != 0 else k
        return w
    src = (scale * (rows + 0.5) - 0.5).astype(np.float32).astype(np.float64)
    if mode == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = src.astype(np.int64)
        lam = np.clip(src - i0, 0.0, 1.0)
        i1 = np.minimum(i0 + 1, n_in - 1)
        np.add.at(w, (rows, i0), 1 - lam)
        np.add.at(w, (rows, i1), lam)
        return w
    if mode == "bicubic":
        i0 = np.floor(src).astype(np.int64)
        t = src - i0
        for j, coef in enumerate((_cubic(t + 1, -0.75), _cubic(t, -0.75), _cubic(1 - t, -0.75), _cubic(2 - t, -0.75))):
            np.add.at(w, (rows, np.clip(i0 - 1 + j, 0, n_in - 1)), coef)
        return w
    raise PortableError(f"step 'resize': interpolation {mode!r} is not one of nearest, nearest-exact, bilinear, "
                        f"bicubic")


def resize(image: np.ndarray, size, interpolation: str = "bilinear", antialias: bool = True,
           max_size=None) -> np.ndarray:
    """torchvision.transforms.v2.Resize on a float (C, H, W) image (antialias applies to bilinear and
    bicubic only, as in torchvision)."""
    image = _image(image, "resize")
    height, width = image.shape[-2:]
    new_h, new_w = resized_size(height, width, size, max_size)
    if (new_h, new_w) == (height, width):
        return image
    rows = _interpolation_matrix(height, new_h, interpolation, antialias)
    cols = _interpolation_matrix(width, new_w, interpolation, antialias)
    return (rows @ (image.astype(np.float64) @ cols.T)).astype(np.float32)


def center_crop(image: np.ndarray, size) -> np.ndarray:
    """torchvision's CenterCrop: zero-padded (centred) first where the image is smaller than the crop."""
    image = _image(image, "center_crop")
    if isinstance(size, int):
        ch = cw = size
    else:
        ch, cw = (size[0], size[0]) if len(size) == 1 else size
    h, w = image.shape[-2:]
    if ch > h or cw > w:
        top, left = max(ch - h, 0) // 2, max(cw - w, 0) // 2
        image = np.pad(image, ((0, 0), (top, max(ch - h, 0) - top), (left, max(cw - w, 0) - left)))
        h, w = image.shape[-2:]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return image[:, top:top + ch, left:left + cw]


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def pad(image: np.ndarray, padding, fill=0.0, mode: str = "constant") -> np.ndarray:
    """torchvision's Pad with ``padding`` as [left, top, right, bottom]; ``fill`` a number or one per channel."""
    image = _image(image, "pad")
    if mode not in _PAD_MODES:
        raise PortableError(f"step 'pad': mode {mode!r} is not one of {', '.join(_PAD_MODES)}")
    left, top, right, bottom = (int(p) for p in padding)
    widths = ((0, 0), (top, bottom), (left, right))
    if mode != "constant":
        return np.pad(image, widths, mode=_PAD_MODES[mode])
    fills = np.asarray(0.0 if fill is None else fill, dtype=np.float32).reshape(-1)
    if fills.size not in (1, image.shape[0]):
        raise PortableError(f"step 'pad': {fills.size} fill values for an image with {image.shape[0]} channels")
    fills = np.broadcast_to(fills, (image.shape[0],))
    return np.stack([np.pad(c, widths[1:], constant_values=f) for c, f in zip(image, fills)])


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std per channel, in float32 as torchvision computes it; one value serves every channel."""
    image = _image(image, "normalize")
    channels = image.shape[0]
    mean, std = list(mean), list(std)
    if len(mean) == 1 and len(std) == 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels or len(std) != channels:
        raise PortableError(f"step 'normalize': {len(mean)} mean and {len(std)} std values for an image with "
                            f"{channels} channel(s)")
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return (image - m) / s


def grayscale(image: np.ndarray, channels: int = 1) -> np.ndarray:
    """torchvision's Grayscale: 0.2989 R + 0.587 G + 0.114 B, repeated to ``channels`` (1 or 3)."""
    image = _image(image, "grayscale")
    if image.shape[0] == 1:
        return np.repeat(image, channels, axis=0)
    if image.shape[0] != 3:
        raise PortableError(f"step 'grayscale' takes 1 or 3 channels, not {image.shape[0]}")
    r, g, b = image
    luma = (r * np.float32(0.2989) + g * np.float32(0.587) + b * np.float32(0.114))[None]
    return np.repeat(luma, channels, axis=0)


def rgb(image: np.ndarray) -> np.ndarray:
    """torchvision's RGB: a one-channel image repeated to three; three or more channels kept."""
    image = _image(image, "rgb")
    return image if image.shape[0] >= 3 else np.repeat(image, 3, axis=0)


# -- text -------------------------------------------------------------------------------------------

def tokenize(text: str, lower: bool = False, replace=(), split: str = "whitespace") -> list[str]:
    """Lower-case (when asked), apply the plain replacements in order, then split at white space
    (``str.split()``) or into characters: the text plugin's word and character tokenizers."""
    if not isinstance(text, str):
        raise PortableError(f"step 'tokenize' takes text (str), not {type(text).__name__}")
    if lower:
        text = text.lower()
    for old, new in replace:
        text = text.replace(old, new)
    if split == "whitespace":
        return text.split()
    if split == "characters":
        return list(text)
    raise PortableError(f"step 'tokenize': split {split!r} is not 'whitespace' or 'characters'")


@functools.lru_cache(maxsize=4)
def _hf_tokenizer(spec: str):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise PortableError("step 'hf_tokenizer' (a BPE, WordPiece or Unigram tokenizer) needs the 'tokenizers' "
                            "package: pip install tokenizers") from None
    return Tokenizer.from_str(spec)


def hf_tokenize(text: str, tokenizer: str) -> list[str]:
    """The tokens of a trained HF ``tokenizers`` tokenizer, given as its JSON text."""
    if not isinstance(text, str):
        raise PortableError(f"step 'hf_tokenizer' takes text (str), not {type(text).__name__}")
    return _hf_tokenizer(tokenizer).encode(text).tokens


_INDEXES: dict = {}  # id(token list) -> (the list, token -> id); the list is held so its id stays its own


def _token_index(tokens: list) -> dict:
    """token -> id, built once per vocabulary (a vocabulary step is applied to every text of a batch)."""
    hit = _INDEXES.get(id(tokens))
    if hit is None or hit[0] is not tokens:
        if len(_INDEXES) >= 4:
            _INDEXES.clear()
        hit = _INDEXES[id(tokens)] = (tokens, {t: i for i, t in enumerate(tokens)})
    return hit[1]


def vocab(tokens: list, step: dict) -> np.ndarray:
    """Token -> id by the vocabulary (unknown: ``unk_index``), then ``<bos>``, truncation to
    ``max_length`` (which counts ``<bos>`` and ``<eos>``) and ``<eos>``, in text.vocab's order."""
    if isinstance(tokens, str):
        raise PortableError("step 'vocab' numbers tokens, but received a whole text; a tokenize step comes first")
    index = _token_index(_setting(step, "tokens"))
    unk = int(_setting(step, "unk_index"))
    ids = [index.get(t, unk) for t in tokens]
    add_eos = bool(step.get("add_eos", False))
    if step.get("add_bos", False):
        ids.insert(0, int(_setting(step, "bos_index")))
    max_length = step.get("max_length")
    if max_length is not None and len(ids) + add_eos > max_length:
        ids = ids[:max_length - add_eos]
    if add_eos:
        ids.append(int(_setting(step, "eos_index")))
    return np.asarray(ids, dtype=np.int64)


# -- audio ------------------------------------------------------------------------------------------

#: WAVE format tags: PCM, IEEE float, and the extensible header that names one of them in a sub-format
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path) -> tuple[np.ndarray, int]:
    """A WAV file as float32 (channels, frames) and its sample rate: PCM 8/16/24/32-bit and IEEE
    float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE. Integers are scaled as libsndfile does (the
    audio plugin reads through it): divided by 2**(bits-1), 8-bit centred on 128 first.

    The RIFF chunks are read here rather than by the standard ``wave`` module, which (before
    Python 3.12) refuses float and extensible files.
    """
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise PortableError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt, samples, pos = None, None, 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            fmt = body
        elif chunk == b"data":
            if size not in (0, 0xFFFFFFFF) and len(body) < size:  # 0 / ~0: size unknown to a streaming writer
                raise PortableError(f"{path}: truncated: the header announces {size} bytes of audio, the file "
                                    f"holds {len(body)}")
            samples = body if size not in (0, 0xFFFFFFFF) else data[pos + 8:]
            break
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is None or len(fmt) < 16 or samples is None:
        raise PortableError(f"{path}: not a usable WAV file (its 'fmt ' or 'data' chunk is missing)")
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format tag
    if channels < 1 or rate < 1:
        raise PortableError(f"{path}: the WAV header says {channels} channels at {rate} Hz")
    width = bits // 8
    frames = len(samples) // (width * channels) if width else 0
    if frames == 0:
        raise PortableError(f"{path}: zero-length clip (no audio frames)")
    raw = samples[:frames * width * channels]
    if tag == _FLOAT and bits in (32, 64):
        values = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif tag == _PCM and bits in (8, 16, 24, 32):
        values = _pcm(raw, bits)
    else:
        raise PortableError(f"{path}: WAV encoding not supported (format tag {tag}, {bits}-bit); "
                            f"PCM 8/16/24/32-bit and float 32/64-bit are")
    return values.reshape(frames, channels).T.copy(), int(rate)


def _pcm(raw: bytes, bits: int) -> np.ndarray:
    if bits == 8:  # unsigned bytes, silence at 128
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if bits == 24:  # three bytes, little-endian: placed in the top of an int32, then scaled as 32-bit
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        wide = np.zeros((len(b), 4), dtype=np.uint8)
        wide[:, 1:] = b
        return (wide.view("<i4").reshape(-1).astype(np.float64) / 2.0 ** 31).astype(np.float32)
    dtype = "<i2" if bits == 16 else "<i4"
    return (np.frombuffer(raw, dtype=dtype).astype(np.float64) / 2.0 ** (bits - 1)).astype(np.float32)


def _read_any_audio(path) -> tuple[np.ndarray, int]:
    path = Path(path)
    if not path.is_file():
        raise PortableError(f"{path}: file not found")
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF":
        return read_wav(path)
    try:  # FLAC, OGG, MP3...: soundfile (libsndfile, no torch) when it is installed
        import soundfile as sf
    except ImportError:
        raise PortableError(f"{path}: not a WAV file; other audio formats need the 'soundfile' package") from None
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's errors: unknown format, damaged data
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise PortableError(f"{path}: not a readable audio file ({reason})") from None
    if data.shape[0] == 0:
        raise PortableError(f"{path}: zero-length clip (no audio frames)")
    return data.T.copy(), int(rate)


@functools.lru_cache(maxsize=8)
def _sinc_kernel(orig: int, new: int, width_zeros: int, rolloff: float) -> tuple[np.ndarray, int]:
    """torchaudio's ``sinc_interp_hann`` polyphase kernel, (new, 2 * width + orig), as float32."""
    base = min(orig, new) * rolloff
    width = int(np.ceil(width_zeros * orig / base))
    idx = np.arange(-width, width + orig, dtype=np.float64)[None] / orig
    # torchaudio divides the output offsets in float32 before adding them: the same here
    t = (np.arange(0, -new, -1).astype(np.float32) / np.float32(new)).astype(np.float64)[:, None] + idx
    t = np.clip(t * base, -width_zeros, width_zeros)
    window = np.cos(t * np.pi / width_zeros / 2) ** 2
    t = t * np.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    return (kernel * window * (base / orig)).astype(np.float32), width


def resample(waveform: np.ndarray, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
             rolloff: float = 0.99) -> np.ndarray:
    """(channels, frames) from ``orig_freq`` to ``new_freq`` Hz: torchaudio's ``Resample`` (windowed-sinc
    polyphase filter, Hann window), computed the same way so the samples match what training saw."""
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq == new_freq:
        return np.asarray(waveform, dtype=np.float32)
    g = np.gcd(orig_freq, new_freq)
    orig, new = orig_freq // g, new_freq // g
    kernel, width = _sinc_kernel(orig, new, int(lowpass_filter_width), float(rolloff))
    waveform = np.asarray(waveform, dtype=np.float32)
    length = waveform.shape[-1]
    padded = np.pad(waveform, ((0, 0), (width, width + orig)))
    # each window of the padded signal, stride orig, gives `new` outputs (one per filter phase)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1], axis=-1)[:, ::orig]
    out = (windows @ kernel.T).reshape(waveform.shape[0], -1)
    return np.ascontiguousarray(out[:, :int(np.ceil(new * length / orig))])


def fit_length(waveform: np.ndarray, samples: int | None) -> np.ndarray:
    """Centre-crop or zero-pad the last axis to ``samples``: the audio plugin's validation rule (the
    excess or the missing room split in two, the smaller half first)."""
    n = waveform.shape[-1]
    if samples is None or n == samples:
        return waveform
    room = abs(n - samples)
    start = room // 2
    if n > samples:
        return waveform[:, start:start + samples]
    return np.pad(waveform, ((0, 0), (start, room - start)))


def read_audio(path, sample_rate: int, channels: int, samples: int | None) -> np.ndarray:
    """An audio file as float32 (channels, samples), as the audio plugin's validation split prepares a
    clip: channels averaged to one when ``channels`` is 1, resampled to ``sample_rate``, then centre-cropped
    or zero-padded to ``samples`` (None: the whole clip)."""
    waveform, rate = _read_any_audio(path)
    if channels == 1 and waveform.shape[0] > 1:
        waveform = waveform.mean(axis=0, keepdims=True, dtype=np.float32)
    elif waveform.shape[0] != channels:
        raise PortableError(f"{path}: has {waveform.shape[0]} channel(s), the model takes {channels}")
    waveform = resample(waveform, rate, sample_rate)
    return fit_length(waveform, samples).astype(np.float32, copy=False)


def gain(waveform: np.ndarray, factor: float) -> np.ndarray:
    """torchaudio's Vol: multiply, then clamp to [-1, 1]."""
    return np.clip(np.asarray(waveform, dtype=np.float32) * np.float32(factor), -1.0, 1.0)


# -- steps ------------------------------------------------------------------------------------------

def _size(value):
    return value if value is None or isinstance(value, int) else [int(v) for v in value]


_PER_SAMPLE = {
    "identity": lambda s, x: x,
    "resize": lambda s, x: resize(x, _size(_setting(s, "size")), s.get("interpolation", "bilinear"),
                                  bool(s.get("antialias", True)), s.get("max_size")),
    "center_crop": lambda s, x: center_crop(x, _size(_setting(s, "size"))),
    "pad": lambda s, x: pad(x, _setting(s, "padding"), s.get("fill", 0.0), s.get("mode", "constant")),
    "normalize": lambda s, x: normalize(x, _setting(s, "mean"), _setting(s, "std")),
    "grayscale": lambda s, x: grayscale(x, int(s.get("channels", 1))),
    "rgb": lambda s, x: rgb(x),
    "tokenize": lambda s, x: tokenize(x, bool(s.get("lower", False)), s.get("replace", ()),
                                      s.get("split", "whitespace")),
    "hf_tokenizer": lambda s, x: hf_tokenize(x, _setting(s, "tokenizer")),
    "vocab": lambda s, x: vocab(x, s),
    "resample": lambda s, x: resample(x, _setting(s, "orig_freq"), _setting(s, "new_freq"),
                                      s.get("lowpass_filter_width", 6), s.get("rolloff", 0.99)),
    "gain": lambda s, x: gain(x, _setting(s, "factor")),
}
_COLLATE = ("stack", "pad_tokens")
#: every step this runtime knows: per-sample steps, then the batching ones
STEPS = tuple(_PER_SAMPLE) + _COLLATE


def _name(step) -> str:
    if not isinstance(step, dict) or not isinstance(step.get("step"), str):
        raise PortableError(f"a portable step is a dict with a 'step' name, not {step!r}")
    return step["step"]


def check_steps(steps) -> None:
    """Raise :class:`PortableError` naming the first step this runtime does not know (checked before any
    input is read, so ``kernel predict`` fails at once on an export made by a newer plugin)."""
    for step in steps or ():
        name = _name(step)
        if name not in STEPS:
            raise PortableError(f"unknown portable step {name!r} (this plugin-onnx knows: {', '.join(STEPS)}); "
                                f"a newer plugin-onnx may know it")


def apply_steps(steps, x):
    """Apply the per-sample steps in order: an image array through resize/normalize/..., or a text
    through tokenize and vocab (ids as int64). Collate steps in the list are skipped (see :func:`collate`)."""
    check_steps(steps)
    for step in steps or ():
        name = step["step"]
        if name in _PER_SAMPLE:
            x = _PER_SAMPLE[name](step, x)
    return x


def _collate_step(spec) -> dict | None:
    """The batching step: given alone, or the last one among a list of steps (None: stack)."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        if _name(spec) not in _COLLATE:
            raise PortableError(f"{_name(spec)!r} is not a batching step ({', '.join(_COLLATE)})")
        return spec
    check_steps(spec)
    found = [s for s in spec if s["step"] in _COLLATE]
    return found[-1] if found else None


def collate(spec, items: list, pad_to: int | None = None):
    """One batch from processed samples: a stacked array, or for ``pad_tokens`` the dict of padded ids,
    padding mask and lengths. ``pad_to``: pad token sequences to this fixed length (for a graph whose
    sequence axis is fixed), truncating longer ones."""
    if not items:
        raise PortableError("no inputs to make a batch of")
    step = _collate_step(spec)
    if step is None or step["step"] == "stack":
        shapes = {np.shape(x) for x in items}
        if len(shapes) > 1:
            raise PortableError(f"the inputs have different shapes after preprocessing ({sorted(shapes)}); "
                                f"they cannot be stacked into one batch")
        return np.stack([np.asarray(x) for x in items])
    return pad_tokens(step, items, pad_to)


def pad_tokens(step: dict, items: list, pad_to: int | None = None) -> dict:
    """text.vocab's PadBatch: ids padded with ``padding_index`` to the longest (at least ``min_width``
    columns, so a batch of empty texts keeps one padding column), a mask True at padding, the lengths."""
    padding = int(_setting(step, "padding_index"))
    names = {"ids": "input_ids", "mask": "padding_mask", "lengths": "lengths", **step.get("names", {})}
    seqs = [np.asarray(x, dtype=np.int64).reshape(-1) for x in items]
    if pad_to is not None:
        if pad_to < 1:
            raise PortableError(f"pad_to must be at least 1, not {pad_to}")
        seqs = [s[:pad_to] for s in seqs]
    lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
    width = pad_to if pad_to is not None else max(int(lengths.max()), int(step.get("min_width", 1)))
    ids = np.full((len(seqs), width), padding, dtype=np.int64)
    for row, s in zip(ids, seqs):
        row[:len(s)] = s
    mask = np.arange(width)[None, :] >= lengths[:, None]
    if step.get("mask_marks", "padding") == "tokens":
        mask = ~mask
    return {names["ids"]: ids, names["mask"]: mask, names["lengths"]: lengths}
