"""One rich console for the kernel's output: wide enough for tables when output goes to a file or pipe."""
from __future__ import annotations

import sys


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, soft_wrap=False, width=None if stream.isatty() else 160, highlight=False)
