"""Audio files in and out, through soundfile (torchaudio >= 2.9 reads files only through torchcodec).

``probe`` reads a file's header and says what is wrong with it, if anything; ``read`` decodes it
into a float32 ``(channels, frames)`` tensor. Every problem is a :class:`BadAudio` naming the file,
which the datasets turn into a ``KernelError`` or a counted skip. ``wav_bytes`` is the way back: a
sample as the bytes of a WAV file, for an ``<audio>`` element in an HTML report.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

#: Extensions read as audio (what libsndfile decodes); compared lower-cased.
EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au", ".mp3")


class BadAudio(Exception):
    """A file that cannot be used: the message names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class Header:
    """What a file's header says: enough to check a dataset without decoding it."""

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


# libsndfile repairs a truncated WAV silently (it reads what is there); its log still says
# "data : 32000 (should be 15978)", which is how a cut-off download is caught.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def probe(path) -> Header:
    """The header of an audio file; :class:`BadAudio` when it is unreadable, truncated or empty."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise BadAudio(path, "file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's errors: unknown format, malformed header
        raise BadAudio(path, f"not a readable audio file ({_reason(exc)})") from None
    short = _SHORT_DATA.search(info.extra_info or "")
    if short and int(short.group(1)) < 0xFFFF0000 and int(short.group(2)) < int(short.group(1)):
        raise BadAudio(path, f"truncated: the header announces {short.group(1)} bytes of audio, "
                             f"the file holds {short.group(2)}")
    if info.frames <= 0:
        raise BadAudio(path, "zero-length clip (no audio frames)")
    return Header(str(path), int(info.samplerate), int(info.frames), int(info.channels), str(info.format))


def read(path):
    """Decode a file: ``(float32 tensor (channels, frames), sample_rate)``; :class:`BadAudio` on failure."""
    import soundfile as sf
    import torch

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # a FLAC that loses sync, an OGG cut in the middle
        raise BadAudio(path, f"cannot be decoded, the file may be truncated or damaged ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise BadAudio(path, "zero-length clip (no audio frames)")
    return torch.from_numpy(data.T.copy()), int(rate)


def write(path, waveform, sample_rate: int, subtype: str | None = None):
    """Write a ``(channels, frames)`` (or ``(frames,)``) tensor; the format follows the extension."""
    import soundfile as sf

    sf.write(str(path), _frames_first(waveform), int(sample_rate), subtype=subtype)


def wav_bytes(waveform, sample_rate: int) -> bytes:
    """A waveform as the bytes of a 16-bit PCM WAV file: inline it as
    ``<audio controls src="data:audio/wav;base64,...">`` to make a sample playable in HTML."""
    import soundfile as sf

    buf = io.BytesIO()
    data = _frames_first(waveform)
    peak = float(abs(data).max()) if data.size else 0.0
    if peak > 1.0:  # features or unnormalised audio: scale rather than clip
        data = data / peak
    sf.write(buf, data, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _frames_first(waveform):
    import numpy as np
    import torch

    data = waveform.detach().cpu().float().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if data.ndim == 2:
        data = data.T  # soundfile wants (frames, channels)
    return data.astype("float32", copy=False)


def _reason(exc) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error") else text
