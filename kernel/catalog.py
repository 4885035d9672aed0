"""The catalog: every component of every loaded plugin, by name, and the way to build one.

Names are looked up here; anything with a dot that is not a name (``torch.optim.AdamW``,
``pkg.mod:fn``) is taken as an importable path, so custom code needs no plugin.
"""
from __future__ import annotations

import importlib
import inspect
import re
import traceback
from dataclasses import dataclass, replace
from typing import Any, Callable

from .component import KINDS, Component
from .errors import KernelError, did_you_mean
from .plugins import PluginSet, load_plugins


def normalize_kind(kind: str, kinds=KINDS) -> str:
    """'models' or 'model' -> 'model', among ``kinds`` (a catalog's ``kinds``: the built-in ones and
    those plugins declare); anything else is a KernelError with a suggestion."""
    kind = kind.lower()
    plurals = {k + "s": k for k in kinds}
    if kind in kinds:
        return kind
    if kind in plurals:
        return plurals[kind]
    raise KernelError(f"unknown kind {kind!r}{did_you_mean(kind, list(plurals))}; "
                      f"kinds are: {', '.join(plurals)}")


@dataclass
class Param:
    """One parameter of a component's target, as ``kernel show`` prints it."""

    name: str
    annotation: Any = inspect.Parameter.empty
    default: Any = inspect.Parameter.empty
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_name(self) -> str:
        a = self.annotation
        if a is inspect.Parameter.empty:
            return ""
        if isinstance(a, str):
            return a
        return getattr(a, "__name__", None) if isinstance(a, type) else str(a).replace("typing.", "")


class Catalog:
    """All components by name. Built from a :class:`PluginSet`; cheap, since nothing is imported."""

    def __init__(self, plugins: PluginSet):
        self.plugins = plugins
        self.components: dict[str, Component] = {}
        self.conflicts: dict[str, list[str]] = {}
        for kind in KINDS:
            self._collect(kind)
        #: every kind of component: the built-in ones, then those loaded plugins declare (kernel_kinds);
        #: read after the built-in kinds, since a plugin found broken meanwhile takes its kinds with it
        self.kinds: tuple[str, ...] = plugins.kinds
        for kind in self.kinds[len(KINDS):]:
            self._collect(kind)

    def _collect(self, kind: str):
        for plugin, result in self.plugins.call_each(f"kernel_{kind}s"):
            try:
                self._add_all(kind, plugin, result)
            except Exception as exc:
                self.plugins.mark_broken(plugin, f"hook kernel_{kind}s returned {exc}", traceback.format_exc())

    def _add_all(self, kind: str, plugin: str, result):
        items = list(result or [])
        bad = [c for c in items if not isinstance(c, Component)]
        if bad:
            raise TypeError(f"a list of kernel.Component, not {type(bad[0]).__name__}")
        for comp in items:
            comp = replace(comp, kind=kind, plugin=plugin)
            known = self.components.get(comp.name)
            if known is not None:
                self.conflicts.setdefault(comp.name, [known.plugin]).append(plugin)
                continue
            self.components[comp.name] = comp
            self.plugins.infos[plugin].components += 1

    # -- looking up --------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, c in self.components.items() if kind is None or c.kind == kind)

    def list(self, kind: str | None = None, tag: str | None = None) -> list[Component]:
        kind = normalize_kind(kind, self.kinds) if kind else None
        return [self.components[n] for n in self.names(kind)
                if tag is None or tag in self.components[n].tags]

    def get(self, name: str, kind: str | None = None) -> Component:
        """The component called ``name``, or one made up on the spot for a dotted import path."""
        if not isinstance(name, str) or not name:
            raise KernelError(f"expected the name of a {kind or 'component'} (text), not {name!r}")
        if name in self.conflicts:
            dists = " and ".join(self.plugins.distribution(p) for p in self.conflicts[name])
            raise KernelError(f"component {name!r} is offered by both {dists}; uninstall one, "
                              f"or disable one with KERNEL_DISABLE_PLUGINS")
        comp = self.components.get(name)
        if comp is not None:
            if kind and comp.kind != kind:
                raise KernelError(f"{name!r} is a {comp.kind}, not a {kind}")
            return comp
        prefix = name.split(".", 1)[0]
        info = self.plugins.infos.get(prefix)
        if info is not None and info.status != "loaded":
            raise KernelError(f"unknown {kind or 'component'} {name!r}: plugin {prefix!r} ({info.distribution}) "
                              f"is {info.status}" + (f": {info.error}" if info.error else "") + "; see `kernel plugins`")
        if is_import_path(name) and not self._looks_like_plugin_name(name):
            from .allowed_imports import active

            allowance = active()
            if allowance is not None:  # rebuilding a run file: only the code the user allows, checked now
                return Component(name, allowance.resolve(name), kind=kind or "", plugin="(import)")
            return Component(name, name, kind=kind or "", plugin="(import)")
        choices = self.names(kind) if kind else self.names()
        what = kind or "component"
        listing = f"kernel list {kind}s" if kind else "kernel list"
        raise KernelError(f"unknown {what} {name!r}{did_you_mean(name, choices)}; `{listing}` shows them all")

    def _looks_like_plugin_name(self, name: str) -> bool:
        # 'vision.resnt18' (or 'VISION.resnet18') is a typo for a plugin's component, not a module path
        prefix = name.split(".", 1)[0].lower() + "."
        return ":" not in name and any(n.lower().startswith(prefix) for n in self.components)

    # -- building ----------------------------------------------------------------------------
    def target(self, comp: Component) -> Callable:
        return import_target(comp.target, comp.name)  # an installed plugin's own target, or one already checked

    def params(self, comp: Component) -> list[Param]:
        return signature_params(self.target(comp))

    def create(self, name: str, kind: str | None = None, **params):
        """Build a component by name with the given parameters."""
        comp = self.get(name, kind)
        return self.target(comp)(**params)


def is_import_path(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?", name)) and ("." in name or ":" in name)


def resolve_target(target, name: str = "") -> Callable:
    """Import ``"module:attr"`` or ``"package.module.attr"``; callables pass through.

    For any import path a *user* wrote: a component's parameter that names a function, the
    trainer's loss or optimizer. While a run file is being rebuilt (:mod:`kernel.allowed_imports`)
    only what the user allowed is imported, whichever plugin asks.
    """
    if callable(target):
        return target
    from .allowed_imports import active

    allowance = active()
    if allowance is not None:
        return allowance.resolve(target, name)
    return import_target(target, name)


def import_target(target, name: str = "") -> Callable:
    """Import a path without asking the run-file allowance: for the targets installed plugins
    declare (trusted as the plugins are) and for the allowance itself."""
    if callable(target):
        return target
    if ":" in target:
        module_name, attr = target.split(":", 1)
    else:
        module_name, _, attr = target.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise KernelError(f"cannot import {module_name!r} for {name or target!r}: {exc}") from exc
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise KernelError(f"{module_name!r} has no attribute {attr!r} (wanted for "
                          f"{name or target!r}){did_you_mean(attr, dir(obj))}") from None
    if not callable(obj):
        raise KernelError(f"{name or target!r} points to {type(obj).__name__}, which is not callable")
    return obj


def accepts_any(fn: Callable) -> bool:
    """True when the target takes ``**kwargs`` (so any parameter name may be right)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def signature_params(fn: Callable) -> list[Param]:
    """Parameters of a target from its signature, with the docs of each from its docstring."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    try:
        import typing

        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:
        hints = {}
    docs = param_docs(inspect.getdoc(fn) or "")
    if inspect.isclass(fn) and not docs:
        docs = param_docs(inspect.getdoc(fn.__init__) or "")
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        out.append(Param(p.name, hints.get(p.name, p.annotation), p.default, docs.get(p.name, "")))
    return out


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:?\s*$")
_ENTRY = re.compile(r"^\**(\w+)\**(\s*\([^)]*\))?(\s*):\s*(.*)$")


def param_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from Google, NumPy or reST style docstrings."""
    found: dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:[\w\[\], ]+\s+)?(\w+):\s*(.+)", doc):
        found[m.group(1)] = m.group(2).strip()
    lines = doc.expandtabs().splitlines()
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i]):
            i += 1
            continue
        i += 1
        if i < len(lines) and re.match(r"^\s*-{3,}\s*$", lines[i]):  # NumPy underline
            i += 1
        base, current = None, None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = len(line) - len(line.lstrip())
            if base is None:
                base = indent
            if indent < base or (indent == base and i + 1 < len(lines) and re.match(r"^\s*-{3,}\s*$", lines[i + 1])):
                break  # the section is over
            m = _ENTRY.match(line.strip()) if indent == base else None
            if m:
                current = m.group(1)
                numpy_style = bool(m.group(3))  # "name : type", the description follows below
                found[current] = "" if numpy_style else m.group(4).strip()
            elif indent == base and re.match(r"^\w+$", line.strip()):
                current = line.strip()
                found[current] = ""
            elif current is not None and indent > base:
                found[current] = (found[current] + " " + line.strip()).strip()
            else:
                break
            i += 1
    return found


_CATALOG: dict[tuple, Catalog] = {}


def get_catalog(disable: tuple = ()) -> Catalog:
    """The process-wide catalog (plugins load once per process and per set of disabled plugins)."""
    key = tuple(sorted(disable))
    if key not in _CATALOG:
        _CATALOG[key] = Catalog(load_plugins(disable))
    return _CATALOG[key]
