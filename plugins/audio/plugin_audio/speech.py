"""Spoken words synthesised offline with the espeak-ng library from the ``espeakng-loader`` wheel.

libespeak-ng is driven through ctypes (the wheel gives the library's and the voice data's paths).
The library keeps state between utterances (its pitch phase), and its noise generator is seeded
from the clock; so the generator is reseeded before every utterance, and the same
words come out bit-identical only when spoken in the same order by a fresh process: a build
therefore runs ``python -m plugin_audio.speech`` in a subprocess, which writes one WAV per
utterance into a temporary folder that is renamed into the cache when complete.
"""
from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

SAMPLE_RATE = 22050  # what espeak-ng synthesises
_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_RATE, _PITCH = 1, 3  # espeak_PARAMETER: espeakRATE, espeakPITCH
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One initialised libespeak-ng (process-wide state: make only one per process)."""

    def __init__(self):
        import espeakng_loader

        self.lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng failed to start (returned {rate})")
        # Breathy variants (+f3...) add noise from a generator espeak-ng seeds from the clock:
        # reseeding it (and libc's rand(), which the library also imports) before every utterance
        # makes the noise part of the recipe.
        self._libc = ctypes.CDLL(None)
        self._chunks: list = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events):
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int) -> bytes:
        """16-bit mono PCM at 22,050 Hz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self._chunks.clear()
        self._libc.srand(1)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(1))
        data = text.encode() + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks)


def synthesise(plan_file: str):
    """Speak every utterance of a plan (JSON: folder, items of word/voice/rate/pitch/file) into WAVs."""
    import numpy as np
    import soundfile as sf

    plan = json.loads(Path(plan_file).read_text())
    folder = Path(plan["folder"])
    engine = Espeak()
    for item in plan["items"]:
        pcm = engine.say(item["text"], item["voice"], item["rate"], item["pitch"])
        path = folder / item["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.frombuffer(pcm, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")


if __name__ == "__main__":
    synthesise(sys.argv[1])
