"""``kernel.load(RUN)``: a finished run's model with its fitted transforms, data facts and samples.

The model is rebuilt from ``run.json`` (component and parameters, facts already filled) and loaded
from ``best.pt`` (else ``last.pt``); the transforms are rebuilt and given their fitted state, so
:meth:`LoadedRun.predict` works without reading the dataset. :meth:`LoadedRun.samples` builds the
dataset on first use.

A run folder is data: rebuilding it resolves catalog components of installed plugins, and import
paths only where the user allows them (``allow_imports=``, ``KERNEL_ALLOW_IMPORTS``; see
kernel/allowed_imports.py), never code a run.json someone handed over names.
"""
from __future__ import annotations

import sys

from .errors import KernelError
from .store import Run, RunStore


class LoadedRun:
    """``.model`` (eval mode), ``.transforms``, ``.facts``, ``.classes``, ``.info`` (run.json), ``.run``;
    plugins add methods (hook ``kernel_methods``: ``"LoadedRun.explain"``)."""

    # what __init__ sets, named here so that no plugin's method can shadow it (kernel.methods)
    run: Run
    info: dict
    allowance: object
    facts: dict
    classes: list | None
    checkpoint: str
    model: object
    transforms: list
    collate_fn: object
    _plan: object

    def __init__(self, run: Run, checkpoint: str | None = None, allowance=None):
        from .allowed_imports import AllowedImports, check_spec, enforcing
        from .catalog import get_catalog
        from .data import collate_from
        from .training import checkpoint as ckpt

        self.run, self.info = run, run.info
        self.allowance = allowance or AllowedImports.from_user(where=str(run.dir / "run.json"))
        path = run.dir / "run.json"
        use, params, spec = run.info.get("use"), run.info.get("params", {}), run.info.get("spec")
        if not isinstance(use, str) or not isinstance(params, dict) or not isinstance(spec, dict) \
                or not isinstance(spec.get("dataset"), dict):
            raise KernelError(f"{path} is damaged: 'use', 'params' or 'spec' is missing or of the wrong kind")
        catalog = get_catalog()
        with enforcing(self.allowance):  # every name is checked before anything is imported or built
            check_spec({**spec, "models": [{"use": use}, *(spec.get("models") or [])]}, self.allowance, catalog)
        self.facts = dict(run.info.get("facts") or {})
        self.classes = run.info.get("classes")
        names = [checkpoint] if checkpoint else ["best.pt", "last.pt", "previous.pt"]
        state = None
        for name in names:
            if (run.checkpoints / name).exists():
                try:
                    state = ckpt.load(run.checkpoints / name)
                    self.checkpoint = name
                    break
                except ckpt.CheckpointError as exc:
                    if checkpoint:
                        raise
                    print(f"kernel: warning: {exc}; trying the next checkpoint", file=sys.stderr)
        if state is None:
            raise KernelError(f"run {run.id} has no usable checkpoint in {run.checkpoints}")
        ds = spec["dataset"]
        with enforcing(self.allowance):
            comp = catalog.get(use, "model")
            self.model = catalog.target(comp)(**params)
            self.model.load_state_dict(state["model"])
            self.model.eval()
            self.transforms = [catalog.create(t["use"], "transform", **t.get("params", {}))
                               for t in ds.get("transforms", [])]
        for t, saved in zip(self.transforms, state.get("transforms") or []):
            if saved is not None and hasattr(t, "load_state_dict"):
                t.load_state_dict(saved)
        self.collate_fn = collate_from(None, self.transforms)
        self._plan = None

    def __getattr__(self, name: str):
        # only reached when nothing else has the name: then a method a plugin adds (hook kernel_methods).
        # A private name fails at once: before __init__ has set it (unpickling, copying) it is missing,
        # and looking it up among the plugins would load the catalog, or recurse
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        from .methods import plugin_method

        return plugin_method(self, "LoadedRun", name)

    def __repr__(self):
        return f"LoadedRun({self.run.id!r}, model={type(self.model).__name__}, checkpoint={self.checkpoint!r})"

    @property
    def plan(self):
        """The run's workflow prepared again (dataset, splits, fitted transforms): built on first use."""
        if self._plan is None:
            from .allowed_imports import enforcing
            from .build import prepare
            from .workflow import Workflow

            with enforcing(self.allowance):
                self._plan = prepare(Workflow.from_dict(self.info["spec"]))
        return self._plan

    @property
    def data(self):
        return self.plan.data

    def samples(self, split: str = "valid", count: int = 8, raw: bool = False) -> list:
        """The first ``count`` ``(input, target)`` pairs of a split, transformed (or ``raw``)."""
        data = self.data
        if split not in data.splits:
            raise KernelError(f"split {split!r} does not exist; the splits are {', '.join(data.splits)}")
        ds = (data.raw if raw else data.splits)[split]
        return [ds[i] for i in range(min(count, len(ds)))]

    def preprocess(self, inputs: list):
        """Raw inputs -> one batch: the fitted transforms on each, then the collate function."""
        import torch

        from .data import apply

        items = [apply(self.transforms, [], x, torch.tensor(0)) for x in inputs]
        collate = self.collate_fn or torch.utils.data.default_collate
        batch, _ = collate(items)
        return batch

    def predict(self, inputs, raw: bool = True):
        """The model's outputs for a list of inputs (raw: the transforms are applied first) or one batch."""
        import torch

        from .data import forward, to_device

        batch = self.preprocess(list(inputs)) if raw else inputs
        device = next(self.model.parameters(), torch.empty(0)).device
        with torch.no_grad():
            return forward(self.model, to_device(batch, device))


def load(ref, checkpoint: str | None = None, workspace=None, allow_imports=None) -> LoadedRun:
    """A trained run by id (or unique prefix, or directory): model, transforms, facts, samples, predict.

    ``allow_imports``: import-path prefixes (``["mypkg"]``) the run's run.json may name besides the
    installed plugins' components; ``KERNEL_ALLOW_IMPORTS`` adds more (comma-separated).
    """
    from .allowed_imports import AllowedImports

    # a reader leaves .*.tmp files alone: a writer on another host (a shared store) may own them;
    # `kernel resume` removes a killed writer's under the run's lock
    run = ref if isinstance(ref, Run) else RunStore(workspace).get(str(ref))
    allowance = AllowedImports.from_user(allow_imports, where=str(run.dir / "run.json"),
                                         how="kernel.load(..., allow_imports=[{!r}])")
    return LoadedRun(run, checkpoint, allowance)
