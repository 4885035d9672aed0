"""Errors a user can fix. The CLI prints them in one line and exits 2; ``--debug`` shows the traceback."""
from __future__ import annotations

import difflib
from typing import Iterable


class KernelError(Exception):
    """A mistake in the user's input (a name, a parameter, a file), with what to do about it."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
