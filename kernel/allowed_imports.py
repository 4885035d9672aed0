"""What code a run file may name: a run folder is data, so loading one imports nothing it asks for
unless the user allows it.

``kernel.load``, ``kernel resume`` and the ``--parallel`` worker rebuild a run from its run.json
(``use``, ``spec``). Catalog names resolve to installed plugins, which the user chose to install;
an import path (``pkg.mod:fn``) is code the *file* chose, so it must match a prefix the user
allowed (``--allow-import PREFIX``, ``allow_imports=``, ``KERNEL_ALLOW_IMPORTS``), or the small
default allowance: a plain class of ``torch.optim`` or ``torch.optim.lr_scheduler``
(``torch.optim.AdamW``), and a loss class of ``torch.nn`` (``torch.nn.CrossEntropyLoss``), which
workflows name for their optimizer, scheduler and loss.

The name is checked before anything is imported (an import runs code), and the object found is
checked too: ``torch.optim.adamw:torch.hub.load`` passes a prefix test by its module but walks
through attributes to somewhere else.
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import re
import types

from .errors import KernelError

ENV = "KERNEL_ALLOW_IMPORTS"
# module named -> where its class must be defined: optimizers, schedulers and losses any run file may name
DEFAULT_CLASSES = {"torch.optim": "torch.optim", "torch.optim.lr_scheduler": "torch.optim",
                   "torch.nn": "torch.nn.modules.loss"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("kernel_allowed_imports", default=None)


class ImportRefused(KernelError):
    """A run file names code the user has not allowed."""


def split_path(path: str) -> tuple[str, str]:
    """``"pkg.mod:A.b"`` -> ("pkg.mod", "A.b"); ``"pkg.mod.A"`` -> ("pkg.mod", "A")."""
    if ":" in path:
        module, attr = path.split(":", 1)
    else:
        module, _, attr = path.rpartition(".")
    return module, attr


def _under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or inside it (``a.b`` is under ``a``; ``ab`` is not)."""
    return name == prefix or name.startswith(prefix + ".") or name.startswith(prefix + ":")


class AllowedImports:
    """The import paths a run file may name: the user's prefixes plus the default allowance."""

    def __init__(self, prefixes=(), where: str = "run.json", how: str = "--allow-import {}"):
        self.prefixes = tuple(p.strip() for p in prefixes if p and p.strip())
        self.where, self.how = where, how

    @classmethod
    def from_user(cls, allow=None, where: str = "run.json", how: str = "--allow-import {}") -> "AllowedImports":
        """The prefixes given (a list or a comma-separated string) plus those of ``KERNEL_ALLOW_IMPORTS``."""
        given = allow.split(",") if isinstance(allow, str) else list(allow or ())
        return cls([*given, *os.environ.get(ENV, "").split(",")], where, how)

    def _user_allows(self, path: str) -> bool:
        return any(_under(path, p) for p in self.prefixes)

    def _default_allows(self, path: str) -> bool:
        module, attr = split_path(path)
        return module in DEFAULT_CLASSES and bool(_NAME.fullmatch(attr))

    def refusal(self, path: str, what: str = "", defined_in: str | None = None) -> ImportRefused:
        module = split_path(path)[0] or path
        if defined_in and self._user_allows(path):  # allowed by its path, but the object lives elsewhere
            return ImportRefused(
                f"{self.where} names {path!r}{f' ({what})' if what else ''}, which is defined in "
                f"{defined_in!r}, outside what you allowed; if you trust it, allow {self.how.format(path)} "
                f"exactly (or {ENV}={path})")
        return ImportRefused(
            f"{self.where} names {path!r}{f' ({what})' if what else ''}, which is not a component of an "
            f"installed plugin: a run file imports no code unless you allow it; if you trust this run, "
            f"allow it with {self.how.format(module)} (or {ENV}={module})")

    def check_name(self, path: str, what: str = ""):
        """Refuse ``path`` unless allowed; imports nothing."""
        if not (self._user_allows(path) or self._default_allows(path)):
            raise self.refusal(path, what)

    def resolve(self, path: str, what: str = ""):
        """The object ``path`` names, imported only after its name passed, and checked once found."""
        from .catalog import import_target

        self.check_name(path, what)
        module, attr = split_path(path)
        if self._user_allows(path):
            prefixes = [p for p in self.prefixes if _under(path, p)]
            obj = _walk(module, attr, prefixes, self, path, what)
        else:
            obj = import_target(path, what or path)
            origin = getattr(obj, "__module__", "") or ""
            if not (inspect.isclass(obj) and _under(origin, DEFAULT_CLASSES[module])):
                raise self.refusal(path, what)
        return obj


def _roots(path: str, prefixes: list) -> list[str]:
    """The modules that objects reached through ``path`` may come from: each allowed prefix's module
    part (``mypkg`` for ``mypkg``, ``mypkg.nets`` for ``mypkg.nets:Net``, ``torch.optim`` for an
    exactly allowed ``torch.optim.AdamW``)."""
    roots = [p.split(":", 1)[0] for p in prefixes]
    roots += [split_path(p)[0] for p in prefixes if p == path and ":" not in p]
    return [r for r in roots if r]


def _walk(module_name: str, attr: str, prefixes: list, allowance: AllowedImports, path: str, what: str):
    """Import the module and follow the attributes, refusing a step that leaves the allowed modules."""
    import importlib

    roots = _roots(path, prefixes)

    def inside(name) -> bool:
        return isinstance(name, str) and any(_under(name, r) for r in roots)

    if not inside(module_name):
        raise allowance.refusal(path, what)
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise KernelError(f"cannot import {module_name!r} for {what or path!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise KernelError(f"{module_name!r} has no attribute {attr!r} (wanted for {what or path!r})") from None
        if isinstance(obj, types.ModuleType) and not inside(obj.__name__):
            raise allowance.refusal(path, what)
    origin = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if path not in prefixes and not inside(origin):  # a path allowed exactly is what the user trusts
        raise allowance.refusal(path, what, defined_in=origin)  # an object defined outside what was allowed
    if not callable(obj):
        raise KernelError(f"{what or path!r} points to {type(obj).__name__}, which is not callable")
    return obj


def active() -> AllowedImports | None:
    """The allowance in force while a run file is being rebuilt, else None (the user's own workflow)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def enforcing(allowance: AllowedImports):
    """Within this block, ``Catalog.get`` resolves import paths only through ``allowance``."""
    token = _ACTIVE.set(allowance)
    try:
        yield allowance
    finally:
        _ACTIVE.reset(token)


# settings of the default trainer that it resolves as import paths itself (not through the catalog)
_TRAINER_PATHS = ("loss", "optimizer", "scheduler")


def references(spec) -> list[tuple[str, str]]:
    """Every name a workflow dict asks to build, with where: ``use`` values at any depth, the
    renderers chosen by role, and the trainer's loss, optimizer, scheduler and metrics given as
    bare strings."""
    found: list[tuple[str, str]] = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{where}.{key}" if where else str(key)
                if key == "use" and isinstance(value, str):
                    found.append((value, here))
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(spec, "")
    renderers = spec.get("renderers") if isinstance(spec, dict) else None
    if isinstance(renderers, dict):  # role -> renderer name
        found += [(name, f"renderers.{role}") for role, name in renderers.items() if isinstance(name, str)]
    trainer = spec.get("trainer") if isinstance(spec, dict) else None
    if isinstance(trainer, dict):
        params = {**trainer, **(trainer.get("params") or {})} if isinstance(trainer.get("params") or {}, dict) \
            else dict(trainer)
        for key in _TRAINER_PATHS:
            if isinstance(params.get(key), str):
                found.append((params[key], f"trainer.{key}"))
        metrics = params.get("metrics")
        if isinstance(metrics, list):
            found += [(m, f"trainer.metrics[{i}]") for i, m in enumerate(metrics) if isinstance(m, str)]
    return found


def import_references(spec, catalog=None):
    """``(path, where)`` for each import path (not a catalog name) a workflow dict names; short
    names that are no import path (``"mse"``, ``"auto"``) are left to the component that reads them."""
    from .catalog import get_catalog, is_import_path

    catalog = catalog or get_catalog()
    return [(name, where) for name, where in references(spec)
            if name not in catalog.components and is_import_path(name)]


def check_spec(spec, allowance: AllowedImports, catalog=None):
    """Refuse a run's workflow dict if it names any import path the allowance does not allow."""
    for name, where in import_references(spec, catalog):
        allowance.resolve(name, where)


def import_paths(spec, catalog=None) -> list[str]:
    """The import paths a workflow dict uses: what a --parallel worker is allowed."""
    return sorted({name for name, _ in import_references(spec, catalog)})
