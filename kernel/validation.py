"""Checking a workflow against the catalog: names exist, parameters exist and have the right types.

All problems are collected and reported together, each with its location, before anything is built.
"""
from __future__ import annotations

import inspect

from .catalog import Catalog, accepts_any, get_catalog, signature_params
from .errors import KernelError


def check_workflow(workflow, catalog: Catalog | None = None):
    from .workflow import WorkflowError

    catalog = catalog or get_catalog()
    problems: list[tuple[str, str]] = []
    ds = workflow.dataset
    check_spec(catalog, "dataset", ds.use, ds.params, "dataset", problems)
    for i, t in enumerate(ds.transforms):
        check_spec(catalog, "transform", t.use, t.params, f"dataset.transforms[{i}]", problems)
    for i, t in enumerate(ds.target_transforms):
        check_spec(catalog, "transform", t.use, t.params, f"dataset.target_transforms[{i}]", problems)
    if not workflow.models:
        problems.append(("models", "the workflow has no model; add a [[models]] table"))
    for i, m in enumerate(workflow.models):
        check_spec(catalog, "model", m.use, m.params, f"models[{i}]", problems)
    check_spec(catalog, "trainer", workflow.trainer.use, workflow.trainer.params, "trainer", problems)
    for i, a in enumerate(workflow.analyzers or []):
        check_spec(catalog, "analyzer", a.use, a.params, f"analyzers[{i}]", problems)
    for i, c in enumerate(workflow.callbacks):
        check_spec(catalog, "callback", c.use, c.params, f"callbacks[{i}]", problems)
    for role, name in workflow.renderers.items():
        check_spec(catalog, "renderer", name, {}, f"renderers.{role}", problems)
    if problems:
        raise WorkflowError(problems)


def check_spec(catalog: Catalog, kind: str | None, use: str, params: dict, where: str, problems: list,
               params_where: str | None = None):
    try:
        comp = catalog.get(use, kind)
        target = catalog.target(comp)
    except KernelError as exc:
        problems.append((f"{where}.use", str(exc)))
        return
    check_params(target, params, params_where or f"{where}.params", problems, catalog)


def check_params(target, params: dict, where: str, problems: list, catalog: Catalog):
    known = {p.name: p for p in signature_params(target)}
    open_ended = accepts_any(target)
    from .errors import did_you_mean

    for key, value in params.items():
        loc = f"{where}.{key}"
        param = known.get(key)
        if param is None:
            if not open_ended:
                problems.append((loc, f"unknown parameter{did_you_mean(key, known)}; "
                                      f"it takes: {', '.join(known) or 'no parameters'}"))
            continue
        if isinstance(value, dict) and "use" in value:
            nested = {k: v for k, v in value.items() if k not in ("use", "params")} | dict(value.get("params") or {})
            # a nested spec is written inline ({use = "torch.optim.AdamW", lr = 0.1}): errors say so
            check_spec(catalog, None, value["use"], nested, loc, problems, params_where=loc)
            continue
        message = type_problem(param.annotation, value)
        if message:
            problems.append((loc, message))


def type_problem(annotation, value) -> str:
    """'' when the value fits the annotation (or the annotation cannot be checked), else the reason."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str) or annotation is object:
        return ""
    try:
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(annotation)
    except Exception:
        return ""  # annotations pydantic cannot check (tensors, modules): let the target judge
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        return f"expected {_type_name(annotation)}, got {value!r} ({err['msg']})"
    except Exception:
        return ""
    return ""


def _type_name(annotation) -> str:
    name = getattr(annotation, "__name__", None)
    return name if isinstance(annotation, type) and name else str(annotation).replace("typing.", "")
