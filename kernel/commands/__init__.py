"""The kernel's own commands, added through its built-in plugin like any plugin's.

Each module here is light to import (heavy imports live inside the command functions) and has a
``register(cli)`` that declares its commands and their arguments.
"""
from __future__ import annotations

import importlib

MODULES = ["kernel.commands.catalog", "kernel.commands.workflow", "kernel.commands.plugins", "kernel.commands.runs",
           "kernel.commands.report"]


def register(cli):
    for name in MODULES:
        importlib.import_module(name).register(cli)
