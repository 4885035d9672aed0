"""One rich console for the kernel's output: wide enough for tables when output goes to a file or pipe."""
from __future__ import annotations

import sys


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, soft_wrap=False, width=None if stream.isatty() else 160, highlight=False)


def print_columns(headers: list[str], rows: list[list[str]], stream=None):
    """Rows under headers in aligned columns, the last column cut to the terminal's width.

    For long listings (``kernel list`` shows hundreds of components): rich's Table measures every
    cell and took most of a second for them; this is plain string work. Into a file or pipe the
    last column is never cut.
    """
    import shutil

    stream = stream or sys.stdout
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    room = None
    if stream.isatty():
        room = max(20, shutil.get_terminal_size().columns - sum(widths) - 2 * len(widths))
    for row in [headers, *rows]:
        *first, last = (str(c) for c in row)
        if room is not None and len(last) > room:
            last = last[: room - 1] + "\u2026"
        stream.write("  ".join(c.ljust(w) for c, w in zip(first, widths)) + "  " + last + "\n")


# Setup steps (building the data, fitting transforms, analyzers) can take minutes before the first
# epoch: the CLI turns these lines on (not with --quiet or --json); library calls stay silent.
_steps = {"on": False}


def show_steps(on: bool = True):
    """Print setup steps from now on (``on``) or not."""
    _steps["on"] = bool(on)


def step(message: str):
    """One line on stderr saying what setup step starts now, when steps are shown."""
    if _steps["on"]:
        print(f"kernel: {message}", file=sys.stderr, flush=True)
