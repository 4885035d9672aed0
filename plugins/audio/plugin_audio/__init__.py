"""plugin-audio: audio classification for the kernel (see plugin_audio.plugin for the components).

Importing this package imports nothing heavy; ``plugin_audio.io.wav_bytes`` turns a sample into
WAV bytes for playable HTML reports.
"""
