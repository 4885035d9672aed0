"""``audio.spoken_digits``: the ten digit words spoken by espeak-ng, offline, cached on disk.

The first build synthesises every (word, voice, rate, pitch) into WAV files (22,050 Hz) under the
cache folder, keyed by those parameters; later builds read the files. The same parameters give
the same files, byte for byte (see ``speech.py`` for how).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kernel import KernelError

from .datasets import make_splits

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en", "en-us", "en-gb-x-rp", "en+f3", "en+m3", "en-us+f2")
RATES = (140, 175, 210)
PITCHES = (35, 50, 65)
FORMAT = 2  # bump when the files' layout or synthesis changes: old caches are then not reused


def cache_root() -> Path:
    """``$KERNEL_CACHE`` or ``$XDG_CACHE_HOME/kernel`` or ``~/.cache/kernel``."""
    env = os.environ.get("KERNEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kernel"


def spoken_digits(voices: list = VOICES, rates: list = RATES, pitches: list = PITCHES,
                  sample_rate: int | None = None, duration: float | None = 1.0, valid: float = 0.2,
                  test: float = 0.0, seed: int = 0, cache_dir: str | None = None, preload: bool = True):
    """The digits zero to nine spoken by espeak-ng voices at several rates and pitches (22,050 Hz).

    Synthesised offline on first use (about a second per hundred clips) and cached under
    ``cache_dir/audio/spoken_digits-<key>``; one clip per digit, voice, rate and pitch.

    Args:
        voices: espeak-ng voice names; ``+f3``, ``+m3``... pick a variant (``en+f3``).
        rates: speaking rates in words per minute (80 to 450).
        pitches: base pitches, 0 to 99.
        sample_rate: resample to this rate in Hz (unset: 22,050).
        duration: crop or pad every clip to this many seconds (random crop for training, centre
            otherwise); unset keeps whole clips and pads each batch to its longest.
        valid: fraction of each digit held out for validation (the dataset splits itself).
        test: fraction of each digit held out for testing.
        seed: seed of the split.
        cache_dir: where the synthesised files are kept (default: $KERNEL_CACHE or ~/.cache/kernel).
        preload: keep the decoded clips in memory (they are small).
    """
    who = "audio.spoken_digits"
    voices, rates, pitches = _list(voices, "voices", str), _list(rates, "rates", int), _list(pitches, "pitches", int)
    for r in rates:
        if not 80 <= r <= 450:
            raise KernelError(f"{who}: rates are words per minute between 80 and 450, not {r}")
    for p in pitches:
        if not 0 <= p <= 99:
            raise KernelError(f"{who}: pitches are between 0 and 99, not {p}")
    folder = build(voices, rates, pitches, Path(cache_dir).expanduser() if cache_dir else cache_root())
    entries = [(folder / word / _file_name(v, r, p), i) for i, word in enumerate(WORDS)
               for v in voices for r in rates for p in pitches]
    splits = make_splits(entries, list(WORDS), who=who, sample_rate=sample_rate, duration=duration,
                         valid=valid, test=test, seed=seed, preload=preload)
    for ds in splits.values():
        ds.cache_folder = str(folder)
    return splits


def _list(value, name, kind):
    values = [value] if isinstance(value, (str, int)) else list(value)
    if not values:
        raise KernelError(f"audio.spoken_digits: {name} must not be empty")
    try:
        return [kind(v) for v in values]
    except (TypeError, ValueError):
        raise KernelError(f"audio.spoken_digits: {name} must be a list of {kind.__name__}, not {value!r}") from None


def _file_name(voice: str, rate: int, pitch: int) -> str:
    return f"{voice.replace('+', '_')}_r{rate}_p{pitch}.wav"


def cache_key(voices, rates, pitches) -> str:
    recipe = {"format": FORMAT, "words": WORDS, "voices": voices, "rates": rates, "pitches": pitches}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def build(voices, rates, pitches, root: Path) -> Path:
    """The cache folder for these parameters, synthesising it first when it is not complete."""
    folder = root / "audio" / f"spoken_digits-{cache_key(voices, rates, pitches)}"
    if (folder / "manifest.json").is_file():
        return folder
    _check_voices(voices)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    items = [{"text": word, "voice": v, "rate": r, "pitch": p, "file": f"{word}/{_file_name(v, r, p)}"}
             for word in WORDS for v in voices for r in rates for p in pitches]
    tmp.mkdir(parents=True)
    plan = tmp / "plan.json"
    plan.write_text(json.dumps({"folder": str(tmp), "items": items}))
    proc = subprocess.run([sys.executable, "-m", "plugin_audio.speech", str(plan)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise KernelError(f"audio.spoken_digits: espeak-ng could not synthesise the digits: {last}")
    plan.unlink()
    (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT, "words": WORDS, "voices": voices,
                                                   "rates": rates, "pitches": pitches, "count": len(items)},
                                                  indent=1))
    try:
        tmp.rename(folder)
    except OSError:  # another process finished the same build first: its files are the same
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _check_voices(voices):
    """Name a missing voice before synthesising anything (the library would fall back silently)."""
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    known = {p.name.lower() for p in (data / "voices" / "!v").iterdir()} if (data / "voices" / "!v").is_dir() else set()
    languages = {p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()}
    for voice in voices:
        base, _, variant = voice.partition("+")
        if base.lower() not in languages:
            raise KernelError(f"audio.spoken_digits: espeak-ng has no voice {base!r} (try en, en-us, en-gb-x-rp)")
        if variant and known and variant.lower() not in known:
            raise KernelError(f"audio.spoken_digits: espeak-ng has no voice variant {variant!r} "
                              f"(some: {', '.join(sorted(known)[:8])})")
