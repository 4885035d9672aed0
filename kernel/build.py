"""From a validated workflow to built parts: the data (split, transformed, fitted), then models,
metrics, callbacks and renderers on demand, each filled with the data facts it asks for."""
from __future__ import annotations

import inspect
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, get_catalog
from .errors import KernelError, first_line


def call_with_facts(fn, params: dict, facts: dict, dataset=None, where: str = ""):
    """Call a target with the user's parameters plus the facts its signature asks for by name.

    A fact fills a parameter only when the parameter's annotation (else its default) admits the
    fact's value: names are shared by convention, and a normalisation fact ``normalize = {mean, std}``
    must not land in a confusion matrix's ``normalize: str | None`` or a model's ``normalize: bool``.
    """
    sig = _signature(fn)
    kwargs = dict(params)
    filled = {}
    if sig is not None:
        for name, p in sig.parameters.items():
            if name in kwargs or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if name in facts:
                value = facts[name]
            elif dataset is not None and name not in ("self", "transform", "target_transform"):
                value = getattr(dataset, name, None)
                if value is None or callable(value):
                    continue
            else:
                continue
            if _admits(p, value):
                filled[name] = value
    kwargs.update(filled)
    try:
        return fn(**kwargs), filled
    except KernelError:
        raise
    except Exception as exc:
        # a component that cannot be built from the parameters the user gave (a missing or misnamed
        # one, a size of -1, a list where a number goes): the user's to fix, so one line naming the
        # place; `--debug` shows the traceback, chained from this error
        raise KernelError(f"{where}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = first_line(exc)
    shown = text if isinstance(exc, TypeError) and "argument" in text else f"{type(exc).__name__}: {text}"
    return shown if len(shown) <= 300 else shown[:297] + "..."


def _signature(fn):
    """The signature with string annotations evaluated when they can be, else as written; None if none."""
    for evaluate in (True, False):
        try:
            return inspect.signature(fn, eval_str=evaluate)
        except ValueError:  # no signature at all (some builtins)
            return None
        except (NameError, SyntaxError, TypeError, AttributeError):  # an annotation that does not evaluate
            continue
    return None


# what else a parameter of the key's type accepts (numpy integers are Integral; sizes come as either)
_WIDER = {int: (numbers.Integral,), float: (numbers.Real,), complex: (numbers.Complex,),
          tuple: (tuple, list), list: (list, tuple)}


def _admits(param, value) -> bool:
    """Whether ``value`` fits ``param``: by its annotation when it names classes, else by its default."""
    kinds = _annotation_classes(param.annotation)
    if kinds is None and param.default not in (param.empty, None):
        kinds = (type(param.default),)
    if kinds is None:
        return True
    if isinstance(value, bool) and bool not in kinds:
        return False  # True is an int to isinstance, never a class count or a size
    wide = tuple(k for kind in kinds for k in _WIDER.get(kind, (kind,)))
    return isinstance(value, wide)


def _annotation_classes(annotation) -> tuple | None:
    """The classes an annotation admits (``int | None`` -> (int, NoneType)); None when unknown."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str) or annotation is typing.Any:
        return None
    if annotation is None:
        return (type(None),)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            classes = _annotation_classes(arg)
            if classes is None:
                return None
            out.extend(classes)
        return tuple(out)
    if origin is not None:
        return (origin,) if isinstance(origin, type) else None  # list[int] -> list; Literal -> unknown
    return (annotation,) if isinstance(annotation, type) else None


def spec_parts(spec, where: str = "") -> tuple[str, dict]:
    """``(use, params)`` from a Spec, a nested ``{use=..., ...}`` dict or a bare name.

    Anything else is the user's mistake (``metrics = [5]``): a KernelError at ``where``.
    """
    if isinstance(spec, str) and spec:
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("use"), str) and isinstance(spec.get("params", {}), dict):
        params = {k: v for k, v in spec.items() if k not in ("use", "params")}
        params.update(spec.get("params") or {})
        return spec["use"], params
    if isinstance(getattr(spec, "use", None), str) and isinstance(getattr(spec, "params", None), dict):
        return spec.use, dict(spec.params)
    shown = repr(spec) if len(repr(spec)) <= 60 else repr(spec)[:57] + "..."
    raise KernelError(f"{where + ': ' if where else ''}expected a component name or a table with "
                      f"use = \"NAME\", got {shown}")


@dataclass
class Plan:
    """The built data and the recipes for everything else, ready for trainers and dry runs."""

    workflow: Any
    catalog: Catalog
    data: Any
    dataset_tags: tuple = ()
    notes: list = field(default_factory=list)

    # -- components that depend on the data ---------------------------------------------------
    def build(self, spec, kind: str | None = None, where: str = "", **extra):
        """Build any spec (a name, a dict, a Spec) with data facts filled in."""
        use, params = spec_parts(spec)
        params.update(extra)
        comp = self.catalog.get(use, kind)
        target = self.catalog.target(comp)
        obj, _ = call_with_facts(target, params, self.data.facts, self.data.train, where or use)
        return obj

    def model(self, index: int):
        """Build the index-th model of the workflow; returns ``(module, filled facts)``."""
        spec = self.workflow.models[index]
        comp = self.catalog.get(spec.use, "model")
        target = self.catalog.target(comp)
        where = f"models[{index}] ({spec.use})"
        module, filled = call_with_facts(target, dict(spec.params), self.data.facts, self.data.train, where)
        import torch

        if not isinstance(module, torch.nn.Module):
            raise KernelError(f"{where} built a {type(module).__name__}, not a torch.nn.Module")
        return module, filled

    def callbacks(self) -> list:
        return [self.build(c, "callback", f"callbacks[{i}]") for i, c in enumerate(self.workflow.callbacks)]

    def trainer(self):
        t = self.workflow.trainer
        return self.build(t, "trainer", "trainer")

    def renderer_for(self, meta: dict):
        """The name and object of the renderer for a tensor: the user's override, else the best
        scored (kernel.rendering documents the rule)."""
        override = self.workflow.renderers.get(meta["role"])
        if override:
            return override, self.build(override, "renderer")
        from .rendering import choose_renderer

        return choose_renderer(self.catalog, meta, self.notes)

    def analyzers(self) -> list:
        specs = self.workflow.analyzers
        if specs is None:
            return [(c.name, self.catalog.target(c)()) for c in default_analyzers(self.catalog, self.dataset_tags)]
        return [(s.use, self.build(s, "analyzer", f"analyzers[{i}]")) for i, s in enumerate(specs)]


def default_analyzers(catalog: Catalog, dataset_tags) -> list:
    """Every generic analyzer, plus plugin analyzers whose tags meet the dataset's."""
    out = []
    for comp in catalog.list("analyzer"):
        tags = set(comp.tags)
        if "generic" in tags or tags & set(dataset_tags):
            out.append(comp)
    return out


def prepare(workflow, catalog: Catalog | None = None, data=None) -> Plan:
    """Validate, build the dataset and its splits, fit the transforms, and infer the data facts.

    ``data``: a ``Data`` prepared earlier; reused as it is when it was made from the same
    ``[dataset]`` table and seed (a tuner's trials that change only the model or the trainer).
    """
    from . import data as D
    from .console import step
    from .seeding import seed_everything

    catalog = catalog or get_catalog()
    workflow.validate_components(catalog)
    ds = workflow.dataset
    if data is not None and data.fits(workflow):
        return Plan(workflow, catalog, data, dataset_tags=catalog.get(ds.use, "dataset").tags)
    recipe = D.Data.recipe_of(workflow)
    seed_everything(workflow.seed)
    comp = catalog.get(ds.use, "dataset")
    step(f"building dataset {ds.use}")
    source = _guarded(lambda: catalog.target(comp)(**ds.params), f"dataset ({ds.use})", ds.use)
    splits = D.split_dataset(source, ds.split.valid, ds.split.test, ds.fraction, workflow.seed)
    root = D.root(splits["train"])

    transforms = []
    for i, t in enumerate(ds.transforms):
        where = f"dataset.transforms[{i}] ({t.use})"
        built = _guarded(lambda: catalog.create(t.use, "transform", **t.params), where, t.use)
        if hasattr(built, "fit"):
            step(f"fitting {t.use} on the train split ({len(splits['train'])} samples)")
            _guarded(lambda: built.fit(D.Transformed(splits["train"], transforms)), where + " fit", t.use)
        transforms.append(built)
    target_transforms = [_guarded(lambda: catalog.create(t.use, "transform", **t.params),
                                  f"dataset.target_transforms[{i}] ({t.use})", t.use)
                         for i, t in enumerate(ds.target_transforms)]
    transformed = {name: D.Transformed(s, transforms, target_transforms) for name, s in splits.items()}
    step("reading the data facts")
    facts = _guarded(lambda: D.infer_facts(transformed["train"], transforms, root), "dataset (first sample)")
    for split in transformed.values():  # from now on targets take the task's form (D.conform_target)
        split.task = facts.get("task")
    data = D.Data(splits=transformed, raw=splits, facts=facts, tags=comp.tags,
                  collate_fn=D.collate_from(root, transforms + target_transforms),
                  fingerprint=D.fingerprint(recipe, splits), transforms=transforms, seed=workflow.seed)
    data.target_transforms = target_transforms
    data.recipe = recipe
    _guarded(lambda: D.check_labels(data), "dataset")
    return Plan(workflow, catalog, data, dataset_tags=comp.tags)


def _guarded(fn, where: str, name: str = ""):
    """Run plugin code; a user-facing KernelError passes through, with the place it came from.

    ``where`` names the place and the component (``"dataset (text.csv)"``); a plugin's message that
    begins with the component's ``name`` (``"text.csv: ..."``, useful when called from Python) has
    it replaced by the place, not shown twice.
    """
    try:
        return fn()
    except KernelError as exc:
        message = str(exc)
        if where.split(" ")[0] in message:
            raise
        if name and message.startswith(name + ": "):
            message = message[len(name) + 2:]
        raise KernelError(f"{where}: {message}") from exc
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise KernelError(f"{where}: file not found: {exc.filename or exc}") from exc
    except Exception as exc:  # built from the user's parameters: one line naming the place (see call_with_facts)
        raise KernelError(f"{where}: {_one_line(exc)}") from exc
