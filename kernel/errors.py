"""Errors a user can fix. The CLI prints them in one line and exits 2; ``--debug`` shows the traceback."""
from __future__ import annotations

import difflib
from typing import Iterable


class KernelError(Exception):
    """A mistake in the user's input (a name, a parameter, a file), with what to do about it."""

    exit_code = 2


class WorkflowError(KernelError):
    """Validation problems, each with the location it was found at: ``[(location, message), ...]``.

    It lives here, not in ``kernel.workflow``, so that the validation that raises it and the
    workflow model that calls the validation do not import each other.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        lines = [f"{loc or '(workflow)'}: {msg}" for loc, msg in self.problems]
        super().__init__("invalid workflow:\n  " + "\n  ".join(lines) if len(lines) > 1
                         else f"invalid workflow: {lines[0]}")


def debugging() -> bool:
    """``--debug`` (or ``KERNEL_DEBUG`` set and not "0"): tracebacks are shown, in every process."""
    import os

    return os.environ.get("KERNEL_DEBUG", "") not in ("", "0")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error; its type's name when it has
    no message (``assert`` without one)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choices, or '' when nothing is close.

    A choice that differs from the name only in case comes first (``text.AG_NEWS`` finds
    ``text.ag_news``), then the closest as written, then the closest ignoring case.
    """
    choices = [c for c in choices if isinstance(c, str)]
    if not isinstance(name, str) or not choices:
        return ""
    by_lower: dict[str, list[str]] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), []).append(choice)
    wanted = name.lower()
    close = list(by_lower.get(wanted, []))
    close += difflib.get_close_matches(name, choices, n=3, cutoff=0.6)  # as written, then ignoring case
    for lowered in difflib.get_close_matches(wanted, list(by_lower), n=3, cutoff=0.6):
        close += by_lower[lowered]
    close = list(dict.fromkeys(close))
    close = [c for c in close if c != name][:3]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
