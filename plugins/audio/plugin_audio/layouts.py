"""torchaudio's datasets, read from their official folder layouts on disk through soundfile.

Nothing is downloaded: when the files are absent the error names the folder and the file names
expected there. torchaudio's own dataset classes are not used to read, because they decode through
torchcodec; their layouts (and Speech Commands' official split lists) are followed exactly.
"""
from __future__ import annotations

from pathlib import Path

from kernel import KernelError

from .datasets import audio_files, make_splits

COMMON_ARGS = """
        sample_rate: resample every clip to this rate in Hz (unset: the dataset's own).
        duration: crop or pad every clip to this many seconds (random crop for training, centre
            otherwise); unset keeps whole clips and pads each batch to its longest.
        channels: "downmix", "mono" (a stereo file is bad input) or "keep".
        on_bad: "error" stops at the first unreadable, truncated or empty file; "skip" leaves
            such files out and prints how many.
        preload: decode and resample every file once, keep them in memory."""


def _find(root, *candidates) -> Path | None:
    """The first of ``root/candidate`` that is a folder (``""`` is root itself)."""
    base = Path(root).expanduser()
    for c in candidates:
        p = base / c if c else base
        if p.is_dir():
            return p
    return None


def _missing(who: str, root, expected: str, source: str):
    return KernelError(f"{who}: files not found under {Path(root).expanduser()}: expected {expected}. "
                       f"Nothing is downloaded at run time: get {source} and extract it there (or set root)")


# -- Speech Commands ------------------------------------------------------------------------------------
def speechcommands(root: str = "data", version: str = "speech_commands_v0.02", sample_rate: int | None = None,
                   duration: float | None = 1.0, channels: str = "downmix", on_bad: str = "error",
                   preload: bool = False):
    """Speech Commands (keyword spotting, 35 words in v0.02; 16 kHz, one second), torchaudio's layout
    ``root/SpeechCommands/speech_commands_v0.02/<word>/<speaker>_nohash_<n>.wav``, split by the
    official ``validation_list.txt`` and ``testing_list.txt``.

    Args:
        root: the folder holding ``SpeechCommands/`` (or the version folder itself).
        version: ``speech_commands_v0.02`` or ``speech_commands_v0.01``.""" + COMMON_ARGS
    who = "audio.speechcommands"
    base = _find(root, f"SpeechCommands/{version}", version, "")
    words = [d for d in sorted(base.iterdir()) if d.is_dir() and not d.name.startswith("_")] if base else []
    files = [(f, w.name) for w in words for f in sorted(w.glob("*.wav"))]
    if not files:
        raise _missing(who, root, f"SpeechCommands/{version}/<word>/<speaker>_nohash_<n>.wav with "
                                  f"validation_list.txt and testing_list.txt beside the word folders",
                       f"{version}.tar.gz (http://download.tensorflow.org/data/{version}.tar.gz)")
    lists = {}
    for split, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
        listed = base / name
        if listed.is_file():
            for line in listed.read_text().split():
                lists[str((base / line).resolve())] = split
    classes = sorted({w for _, w in files})
    index = {c: i for i, c in enumerate(classes)}
    return make_splits([(f, index[w]) for f, w in files], classes, who=who, sample_rate=sample_rate,
                       duration=duration, channels=channels, on_bad=on_bad, preload=preload,
                       split_of=lambda path: lists.get(str(Path(path).resolve()), "train"))


# -- YesNo ----------------------------------------------------------------------------------------------
def yesno(root: str = "data", sample_rate: int | None = None, duration: float | None = None,
          channels: str = "downmix", valid: float = 0.2, seed: int = 0, on_bad: str = "error",
          preload: bool = False):
    """YesNo (60 recordings of eight spoken Hebrew yes/no words, 8 kHz), torchaudio's layout
    ``root/waves_yesno/0_1_0_0_1_0_1_1.wav``: the target is the eight 0/1 labels of the file name
    (a multilabel task).

    Args:
        root: the folder holding ``waves_yesno/`` (or that folder itself).
        valid: fraction held out for validation.
        seed: seed of the split.""" + COMMON_ARGS
    who = "audio.yesno"
    base = _find(root, "waves_yesno", "")
    files = []
    for f in audio_files(base) if base else []:
        bits = f.stem.split("_")
        if len(bits) == 8 and all(b in ("0", "1") for b in bits):
            files.append((f, tuple(int(b) for b in bits)))
    if not files:
        raise _missing(who, root, "waves_yesno/<eight 0/1 labels joined by _>.wav (0_1_0_0_1_0_1_1.wav)",
                       "waves_yesno.tar.gz (http://www.openslr.org/resources/1/waves_yesno.tar.gz)")
    classes = [f"word {i + 1}" for i in range(8)]
    return make_splits(files, classes, who=who, sample_rate=sample_rate, duration=duration, channels=channels,
                       valid=valid, seed=seed, on_bad=on_bad, preload=preload, stratify=False)


# -- GTZAN ----------------------------------------------------------------------------------------------
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def gtzan(root: str = "data", sample_rate: int | None = None, duration: float | None = 3.0,
          channels: str = "downmix", valid: float = 0.2, test: float = 0.0, seed: int = 0,
          on_bad: str = "error", preload: bool = False):
    """GTZAN music genres (10 genres x 100 clips of 30 s, 22,050 Hz), torchaudio's layout
    ``root/genres/<genre>/<genre>.00000.wav``.

    Args:
        root: the folder holding ``genres/`` (or that folder itself).
        valid: fraction of each genre held out for validation.
        test: fraction of each genre held out for testing.
        seed: seed of the split.""" + COMMON_ARGS
    who = "audio.gtzan"
    base = _find(root, "genres", "genres_original", "")
    files = []
    for i, genre in enumerate(GTZAN_GENRES):
        folder = base / genre if base else None
        if folder is not None and folder.is_dir():
            files += [(f, i) for f in audio_files(folder)]
    if not files:
        raise _missing(who, root, "genres/<genre>/<genre>.00000.wav for the genres " + ", ".join(GTZAN_GENRES),
                       "the GTZAN archive genres.tar.gz")
    return make_splits(files, list(GTZAN_GENRES), who=who, sample_rate=sample_rate, duration=duration,
                       channels=channels, valid=valid, test=test, seed=seed, on_bad=on_bad, preload=preload)
