"""Methods that plugins add to the kernel's Python objects (hook ``kernel_methods``):
``workflow.tune(trials=20)`` is plugin-tuning's ``tune(workflow, trials=20)``, and
``kernel.load(run).explain(...)`` a plugin's ``explain(loaded_run, ...)``.

The kernel knows no such method itself; a name is looked up here only when the object has no
attribute of that name, and its target is imported on first use.
"""
from __future__ import annotations

import functools

from .errors import did_you_mean

#: the classes that take methods (a plugin cannot shadow an attribute they have already, see _has)
OWNERS = ("Workflow", "LoadedRun")


def methods(catalog) -> dict[str, tuple[str, object]]:
    """``{"Workflow.tune": (plugin, target)}``: every plugin's methods, checked once per catalog."""
    found = getattr(catalog, "_methods", None)
    if found is not None:
        return found
    found = {}
    for plugin, result in catalog.plugins.call_each("kernel_methods"):
        problem = _problem(result, found)
        if problem:
            catalog.plugins.mark_broken(plugin, f"hook kernel_methods: {problem}")
            continue
        for key, target in result.items():
            found[key] = (plugin, target)
    catalog._methods = found
    return found


def _has(owner: str, name: str) -> bool:
    """Whether the class has the name already: an attribute of its own, or one its instances get
    (a workflow's pydantic fields, what LoadedRun.__init__ sets, which the class annotates)."""
    if owner == "Workflow":
        from .workflow import Workflow

        return hasattr(Workflow, name) or name in Workflow.model_fields
    from .loading import LoadedRun

    return hasattr(LoadedRun, name) or name in LoadedRun.__annotations__


def _problem(result, found: dict) -> str:
    if not isinstance(result, dict):
        return f"returned {type(result).__name__}, not a dict {{'Workflow.name': 'module:function'}}"
    for key, target in result.items():
        owner, _, name = str(key).partition(".")
        if owner not in OWNERS or not name.isidentifier() or name.startswith("_"):
            return f"{key!r} is not 'Workflow.<name>' or 'LoadedRun.<name>' (only these take methods)"
        if _has(owner, name):
            return f"{key!r}: {owner} has {name!r} already"
        if key in found:
            return f"{key!r} is already added by plugin {found[key][0]!r}"
        if not (callable(target) or (isinstance(target, str) and ":" in target)):
            return f"{key!r}: the target must be 'module:function' or a callable, not {target!r}"
    return ""


def plugin_method(obj, owner: str, name: str):
    """``obj.name`` as a plugin's method bound to ``obj``; AttributeError when no plugin adds it."""
    from .catalog import get_catalog, import_target

    table = methods(get_catalog())
    entry = table.get(f"{owner}.{name}")
    if entry is None:
        names = [key.partition(".")[2] for key in table if key.startswith(owner + ".")]
        hint = did_you_mean(name, names)
        raise AttributeError(f"{owner!r} object has no attribute {name!r}{hint}"
                             + ("" if hint or names else " (no installed plugin adds methods to it)"))
    plugin, target = entry
    return functools.partial(import_target(target, f"{owner}.{name} (plugin {plugin})"), obj)
