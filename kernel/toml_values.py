"""Values written the way `--set PATH=VALUE` and a workflow file read them (TOML), so a suggestion
printed by an analyzer can be pasted back as it is."""
from __future__ import annotations

import json
import re
import shlex

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value) -> str:
    """A TOML inline value: ``{ use = "vision.Resize", size = [32, 32] }``, ``[0.5, 2.0]``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON
    if isinstance(value, dict):
        items = [f"{k if _BARE_KEY.fullmatch(str(k)) else json.dumps(str(k))} = {toml_value(v)}"
                 for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    tolist = getattr(value, "tolist", None)  # a tensor or an array
    if callable(tolist):
        return toml_value(tolist())
    raise TypeError(f"{type(value).__name__} has no TOML form")


def set_option(path: str, value) -> str:
    """The command-line option that adopts ``value`` at ``path``: ``--set 'trainer.epochs=3'``."""
    return "--set " + shlex.quote(f"{path}={toml_value(value)}")
