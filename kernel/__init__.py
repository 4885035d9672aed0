"""kernel: a microkernel for PyTorch workflows. Everything concrete comes from plugins.

Importing this package imports no torch: heavy names load on first use.
"""
from __future__ import annotations

import pluggy

from .component import KINDS, Artifact, Component, Kind, Media, Report, Section
from .errors import KernelError, WorkflowError, did_you_mean
from .figures import figure_to_image, pyplot

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``@kernel.hookimpl def kernel_models(): ...``
hookimpl = pluggy.HookimplMarker("kernel")

# name -> module that defines it; imported on first attribute access (PEP 562)
_LAZY = {
    "Workflow": "kernel.workflow",
    "parse_overrides": "kernel.workflow",
    "parse_params": "kernel.workflow",
    "newest_runs": "kernel.run_reader",
    "Data": "kernel.data",
    "Result": "kernel.training.result",
    "Supervised": "kernel.training.supervised",
    "Run": "kernel.store",
    "RunStore": "kernel.store",
    "Results": "kernel.runner",
    "load": "kernel.loading",
    "resume": "kernel.runner",
    "prepare": "kernel.build",
    "resolve_target": "kernel.catalog",
    "run_analyzers": "kernel.artifacts",
    "render_sample": "kernel.artifacts",
    "choose_renderer": "kernel.rendering",
    "as_media": "kernel.rendering",
    "write_samples": "kernel.artifacts",
    "sample_indices": "kernel.artifacts",
    "forward": "kernel.data",
    "BatchForm": "kernel.data",
    "source_targets": "kernel.data",
    "mode_for": "kernel.metric_mode",
    "fused": "kernel.fused",  # a module: the fused operators and their references
}


def get_catalog(disable: tuple = ()):
    """The catalog of every installed component (see :class:`kernel.catalog.Catalog`)."""
    from .catalog import get_catalog as _get

    return _get(tuple(disable))


def create(name: str, **params):
    """Build any component by catalog name or import path: ``kernel.create("kernel.value_stats")``."""
    return get_catalog().create(name, **params)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel' has no attribute {name!r}")
    import importlib

    value = importlib.import_module(module)
    if module != f"kernel.{name}":  # a name inside the module, not the module itself
        value = getattr(value, name)
    globals()[name] = value
    return value


#: the public API: plugins import these names from ``kernel`` and nothing from its modules
#: (docs/plugin-guide.md documents each; tests/test_public_api.py holds both to it)
__all__ = ["KINDS", "Artifact", "Component", "Kind", "Media", "Report", "Section", "KernelError", "WorkflowError", "did_you_mean", "figure_to_image",
           "pyplot", "hookimpl", "get_catalog", "create", *_LAZY]
