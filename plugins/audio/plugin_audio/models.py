"""Audio classifiers. Inputs are batches of ``(channels, samples)`` waveforms, or of
``(channels, bins, frames)`` spectrograms where a model says so; outputs are class scores.

``num_classes``, ``in_channels``, ``input_shape`` and ``sample_rate`` are data facts: the kernel
fills them when the workflow leaves them unset. A model that cannot take the data (a waveform too
short, a sample rate it is not built for, a spectrogram where it reads waveforms) says so with a
``KernelError`` naming the setting to change.
"""
from __future__ import annotations

import torch
from torch import nn

from kernel import KernelError


def _shape(input_shape, who: str, want: tuple[int, ...]) -> tuple:
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    if shape is not None and len(shape) not in want:
        kinds = {2: "(channels, samples) waveforms", 3: "(channels, bins, frames) spectrograms"}
        raise KernelError(f"{who} reads {' or '.join(kinds[w] for w in want)}; the input is {shape}: "
                          + ("remove the spectrogram transforms, or use audio.spectrogram_cnn"
                             if 2 in want else "add audio.MelSpectrogram to the dataset transforms"))
    return shape


# -- M5: 1-D convolutions on the raw waveform ---------------------------------------------------------------
def _m5_frames(n: int, stride: int) -> int:
    """Frames left after M5's four conv/pool stages, for an input of ``n`` samples."""
    n = (n - 80) // stride + 1
    for _ in range(3):
        n = n // 4 - 2
    return n // 4


class UnitRMS(nn.Module):
    """Scale each clip to unit RMS level (over its channels and samples).

    Why: raw waveforms sit far below unit variance (speech is around -20 dBFS, and a fixed duration
    pads it with silence), while batch norm's running variance starts at 1; for the first few
    hundred steps the model in eval mode then sees inputs ten times too small and answers one class.
    Normalising the level makes the model loudness-invariant and its validation scores meaningful
    from the first epoch.
    """

    def forward(self, x):
        return x / x.pow(2).mean(dim=tuple(range(1, x.ndim)), keepdim=True).add(1e-8).sqrt()


class M5(nn.Module):
    """Dai et al. 2017, "Very deep convolutional neural networks for raw waveforms" (M5)."""

    def __init__(self, num_classes: int, in_channels: int = 1, channels: int = 32, stride: int = 16,
                 dropout: float = 0.1, normalize: bool = True):
        super().__init__()
        self.level = UnitRMS() if normalize else nn.Identity()

        def block(cin, cout, k, s=1):
            return [nn.Conv1d(cin, cout, k, s), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(4)]

        c = channels
        self.features = nn.Sequential(*block(in_channels, c, 80, stride), *block(c, c, 3), *block(c, 2 * c, 3),
                                      *block(2 * c, 2 * c, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, num_classes))

    def forward(self, x):
        return self.head(self.features(self.level(x)))


def m5(num_classes: int, in_channels: int = 1, input_shape: tuple | None = None, sample_rate: int | None = None,
       channels: int = 32, stride: int = 16, dropout: float = 0.1, normalize: bool = True):
    """M5: four 1-D convolution blocks on the raw waveform, the first with a wide kernel (80 samples).

    Args:
        num_classes: number of classes (a data fact).
        in_channels: audio channels (a data fact).
        input_shape: (channels, samples) of one clip (a data fact): checked to be long enough.
        sample_rate: the clips' rate in Hz (a data fact), used in messages.
        channels: channels of the first blocks (doubled in the last two).
        stride: stride of the first convolution.
        dropout: dropout before the classifier.
        normalize: scale each clip to unit RMS level first (loudness-invariant; see UnitRMS).
    """
    shape = _shape(input_shape, "audio.m5", (2,))
    if shape is not None:
        in_channels = shape[0]
        if _m5_frames(shape[1], stride) < 1:
            need = next(n for n in range(80, 10 ** 7, 16) if _m5_frames(n, stride) >= 1)
            secs = f" ({need / sample_rate:.3f} s at {sample_rate} Hz)" if sample_rate else ""
            raise KernelError(f"audio.m5 needs clips of at least {need} samples{secs}; they have {shape[1]}: "
                              f"raise dataset duration (or lower stride)")
    return M5(num_classes, in_channels, channels, stride, dropout, normalize)


# -- a small CNN on a log-mel spectrogram ---------------------------------------------------------------
class LogMel(nn.Module):
    """Waveform -> log-mel spectrogram, computed on the model's device (so exports include it)."""

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft,
                                                        hop_length=hop_length, n_mels=n_mels)

    def forward(self, x):
        return torch.log(self.mel(x) + 1e-6)


class SpectrogramCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, front: nn.Module | None, widths=(16, 32, 64),
                 dropout: float = 0.2):
        super().__init__()
        self.front = front or nn.Identity()
        layers, cin = [nn.BatchNorm2d(in_channels)], in_channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.features(self.front(x)))


def spectrogram_cnn(num_classes: int, input_shape: tuple | None = None, in_channels: int = 1,
                    sample_rate: int = 16000, n_mels: int = 64, window_ms: float = 25.0, hop_ms: float = 10.0,
                    widths: list = (16, 32, 64), dropout: float = 0.2):
    """2-D convolutions on a log-mel spectrogram. Given waveforms, the model computes the spectrogram
    itself (its first layer); given spectrograms (after ``audio.MelSpectrogram``), it reads them.

    Args:
        num_classes: number of classes (a data fact).
        input_shape: one input's shape (a data fact): (channels, samples) or (channels, bins, frames).
        in_channels: audio channels (a data fact).
        sample_rate: the clips' rate in Hz (a data fact).
        n_mels: mel bands of the spectrogram the model computes.
        window_ms: analysis window in milliseconds.
        hop_ms: hop between frames in milliseconds.
        widths: channels of the convolution blocks.
        dropout: dropout before the classifier.
    """
    shape = _shape(input_shape, "audio.spectrogram_cnn", (2, 3))
    front = None
    if shape is None or len(shape) == 2:
        if shape is not None:
            in_channels = shape[0]
        n_fft = 1 << max(1, int(round(sample_rate * window_ms / 1000)) - 1).bit_length()
        if n_fft // 2 + 1 < 2 * n_mels:
            raise KernelError(f"audio.spectrogram_cnn cannot make {n_mels} mel bands from {sample_rate} Hz audio "
                              f"with a {window_ms} ms window; raise dataset sample_rate, window_ms, or lower n_mels")
        front = LogMel(int(sample_rate), int(n_mels), n_fft, max(1, int(round(sample_rate * hop_ms / 1000))))
    else:
        in_channels = shape[0]
    return SpectrogramCNN(num_classes, in_channels, front, tuple(int(w) for w in widths), dropout)


# -- torchaudio models adapted to classification --------------------------------------------------------
class PooledOverTime(nn.Module):
    """A sequence model's per-frame outputs averaged over time: one score per class."""

    def __init__(self, body: nn.Module, squeeze_channel: bool = False, time_dim: int = -1):
        super().__init__()
        self.body, self.squeeze_channel, self.time_dim = body, squeeze_channel, time_dim

    def forward(self, x):
        if self.squeeze_channel:
            x = x[:, 0]
        out = self.body(x)
        out = out[0] if isinstance(out, tuple) else out
        return out.mean(self.time_dim)


def wav2letter(num_classes: int, input_shape: tuple | None = None, in_channels: int = 1):
    """torchaudio's Wav2Letter (1-D convolutions, 16 kHz speech) with its per-frame scores averaged
    over time. Reads waveforms, or (1, features, frames) MFCCs.

    Args:
        num_classes: number of classes (a data fact).
        input_shape: one input's shape (a data fact).
        in_channels: audio channels (a data fact).
    """
    from torchaudio.models import Wav2Letter

    shape = _shape(input_shape, "audio.wav2letter", (2, 3))
    if shape is not None and len(shape) == 3:
        if shape[0] != 1:
            raise KernelError(f"audio.wav2letter reads one-channel MFCCs; the input is {shape}")
        return PooledOverTime(Wav2Letter(num_classes, "mfcc", shape[1]), squeeze_channel=True)
    channels = shape[0] if shape is not None else in_channels
    return PooledOverTime(Wav2Letter(num_classes, "waveform", channels))


WAV2VEC2_SIZES = {
    # encoder width, layers, heads, feed-forward width
    "tiny": (96, 2, 4, 192),
    "small": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),
}


class Wav2Vec2Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, width: int, num_classes: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(width, num_classes)

    def forward(self, x):
        features, _ = self.encoder(x[:, 0])
        return self.head(features.mean(1))


def wav2vec2(num_classes: int, sample_rate: int = 16000, input_shape: tuple | None = None, size: str = "tiny"):
    """torchaudio's wav2vec 2.0 architecture (untrained: no weights are downloaded) with a linear
    head on the time-averaged features. Built for mono 16 kHz audio.

    Args:
        num_classes: number of classes (a data fact).
        sample_rate: the clips' rate in Hz (a data fact): must be 16000.
        input_shape: one input's shape (a data fact): (1, samples).
        size: "tiny", "small" or "base" (the published base configuration).
    """
    from torchaudio.models import wav2vec2_model

    if int(sample_rate) != 16000:
        raise KernelError(f"audio.wav2vec2 takes 16000 Hz audio (its feature encoder's strides are made for "
                          f"it); the data is {sample_rate} Hz: set dataset sample_rate = 16000")
    shape = _shape(input_shape, "audio.wav2vec2", (2,))
    if shape is not None and shape[0] != 1:
        raise KernelError(f"audio.wav2vec2 takes mono audio; the input has {shape[0]} channels: set dataset "
                          f"channels = \"downmix\"")
    if size not in WAV2VEC2_SIZES:
        raise KernelError(f"audio.wav2vec2: size must be one of {', '.join(WAV2VEC2_SIZES)}, not {size!r}")
    width, layers, heads, ff = WAV2VEC2_SIZES[size]
    encoder = wav2vec2_model(
        extractor_mode="group_norm", extractor_conv_layer_config=None, extractor_conv_bias=False,
        encoder_embed_dim=width, encoder_projection_dropout=0.1, encoder_pos_conv_kernel=128,
        encoder_pos_conv_groups=16, encoder_num_layers=layers, encoder_num_heads=heads,
        encoder_attention_dropout=0.1, encoder_ff_interm_features=ff, encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.1, encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)
    return Wav2Vec2Classifier(encoder, width, num_classes)
