"""Fixtures for the audio plugin's tests: tiny files in real formats, in a temporary folder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the layouts helper

import layouts  # noqa: E402


@pytest.fixture
def digits_cache(tmp_path_factory):
    """A cache folder of its own, so tests never read or write ~/.cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tone_folder(tmp_path):
    return layouts.folder(tmp_path / "tones")
