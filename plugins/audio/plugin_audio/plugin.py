"""The hooks of the audio plugin: they describe components and import nothing heavy.

An audio workflow reads clips (any ``audio.*`` dataset: resampled, mono, cropped or padded to a
fixed duration, split by the dataset so that training crops at random and validation at the
centre), optionally turns them into spectrograms (``audio.MelSpectrogram``...), and trains models
that read waveforms (``audio.m5``) or compute their own spectrogram (``audio.spectrogram_cnn``).

``example=`` gives the conformance check (``kernel check-plugin audio``) parameters and data that
build each component offline: the tiny files in ``plugin_audio/samples`` (official layouts).
"""
import os

from kernel import Component, hookimpl

from .names import INPUT_RECIPES, TRANSFORMS

P = "plugin_audio."
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")
TAGS = ("audio", "classification")

#: The data components are checked on: nine short spoken digits shipped with the plugin (8 kHz).
DIGITS = {"use": "audio.folder", "params": {"root": os.path.join(SAMPLES, "digits"), "duration": 1.0}}


def _sample(*parts):
    return os.path.join(SAMPLES, *parts)


@hookimpl
def kernel_datasets():
    d, l = P + "datasets:", P + "layouts:"
    return [
        Component("audio.folder", d + "folder_dataset",
                  "Audio files (WAV, FLAC, OGG) in one sub-folder per class; resampled, mono, fixed duration",
                  tags=TAGS, example={"root": _sample("digits")}),
        Component("audio.spoken_digits", P + "digits:spoken_digits",
                  "Digits zero to nine spoken by espeak-ng voices, synthesised offline and cached (22,050 Hz)",
                  tags=TAGS, example={"voices": ["en", "en+f3"], "rates": [175], "pitches": [50]}),
        Component("audio.speechcommands", l + "speechcommands",
                  "Speech Commands keywords from the local SpeechCommands folder, official splits",
                  tags=TAGS, example={"root": _sample()}),
        Component("audio.yesno", l + "yesno", "YesNo: eight Hebrew yes/no words per clip (multilabel), local files",
                  tags=("audio", "multilabel"), example={"root": _sample()}),
        Component("audio.gtzan", l + "gtzan", "GTZAN music genres (10) from the local genres folder",
                  tags=TAGS, example={"root": _sample(), "duration": 0.2}),
    ]


@hookimpl
def kernel_transforms():
    out = []
    for name, (summary, kind, example) in TRANSFORMS.items():
        data = {**DIGITS, "transforms": INPUT_RECIPES[kind]}
        out.append(Component(f"audio.{name}", f"{P}transforms:{name}", f"torchaudio: {summary}",
                             tags=("audio",), example={"_dataset": data, **example}))
    return out


@hookimpl
def kernel_models():
    m = P + "models:"
    digits = {"_dataset": DIGITS}
    return [
        Component("audio.m5", m + "m5", "M5: 1-D convolutions on the raw waveform", tags=TAGS, example=digits),
        Component("audio.spectrogram_cnn", m + "spectrogram_cnn",
                  "2-D convolutions on a log-mel spectrogram (computed by the model from waveforms, or given)",
                  tags=TAGS, example=digits),
        Component("audio.wav2letter", m + "wav2letter",
                  "torchaudio Wav2Letter, per-frame scores averaged over time", tags=TAGS, example=digits),
        Component("audio.wav2vec2", m + "wav2vec2",
                  "torchaudio wav2vec 2.0 architecture (untrained) with a pooled linear head; mono 16 kHz",
                  tags=TAGS, example={"_dataset": {**DIGITS, "params": {**DIGITS["params"], "sample_rate": 16000}}}),
    ]


@hookimpl
def kernel_renderers():
    r = P + "renderers:"
    return [
        Component("audio.sound", r + "SoundRenderer", "The sample as a WAV file: a player in the report",
                  tags=("audio",), example={"_dataset": DIGITS}),
        Component("audio.waveform", r + "WaveformRenderer", "Waveform plot, time in seconds",
                  tags=("audio",), example={"_dataset": DIGITS}),
        Component("audio.spectrogram", r + "SpectrogramRenderer",
                  "Spectrogram in dB, axes in seconds and Hz (power, mel or complex STFT)",
                  tags=("audio",), example={"_dataset": {**DIGITS, "transforms": [{"use": "audio.Spectrogram"}]}}),
        Component("audio.attribution", P + "attributions:AttributionSpectrogram",
                  "A waveform's attribution over its spectrogram (time and frequency) and over time",
                  tags=("audio",), example={"_dataset": DIGITS}),
    ]


@hookimpl
def kernel_analyzers():
    a = P + "analyzers:"
    return [
        Component("audio.durations", a + "Durations", "Clip durations, sample rate and zero padding per split",
                  tags=("audio",), example={"_dataset": DIGITS}),
        Component("audio.loudness", a + "Loudness", "Level (dBFS), peak, clipping and silence per split",
                  tags=("audio",), example={"_dataset": DIGITS}),
    ]
