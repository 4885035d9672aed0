"""Checking a workflow against the catalog: names exist, parameters exist and have the right types.

All problems are collected and reported together, each with its location, before anything is built.
Locations are the paths a user writes (``models[1].params.dropout``, ``trainer.epochs``), the same
that ``--set`` takes.
"""
from __future__ import annotations

import inspect
import numbers
import types
import typing

from .catalog import Catalog, accepts_any, get_catalog, signature_params
from .component import is_spec
from .errors import KernelError, WorkflowError, did_you_mean, first_line


def check_workflow(workflow, catalog: Catalog | None = None):
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
    # a trainer's settings are written in [trainer] itself (trainer.epochs), and errors say so
    check_spec(catalog, "trainer", workflow.trainer.use, workflow.trainer.params, "trainer", problems,
               params_where="trainer")
    for i, a in enumerate(workflow.analyzers or []):
        check_spec(catalog, "analyzer", a.use, a.params, f"analyzers[{i}]", problems)
    for i, c in enumerate(workflow.callbacks):
        check_spec(catalog, "callback", c.use, c.params, f"callbacks[{i}]", problems)
    for role, name in workflow.renderers.items():
        check_spec(catalog, "renderer", name, {}, f"renderers.{role}", problems)
    for name, table in workflow.sections.items():
        check_section(catalog, workflow, name, table, problems)
    if problems:
        raise WorkflowError(problems)


def check_section(catalog: Catalog, workflow, name: str, table: dict, problems: list):
    """A plugin's table (hook ``kernel_sections``): its keys are the target's parameters, and the
    object it builds may check the rest against the whole workflow."""
    sections = catalog.names("section")
    if name not in sections:
        hint = did_you_mean(name, sections + list(type(workflow).model_fields))
        owners = f"; plugins own {', '.join(f'[{n}]' for n in sections)}" if sections and not hint else ""
        problems.append((name, f"unknown setting{hint}{owners}"))
        return
    target = catalog.target(catalog.get(name, "section"))
    known = {p.name: p for p in signature_params(target)}
    before = len(problems)
    for key, value in table.items():  # values are the plugin's to read: not component specs
        param = known.get(key)
        if param is None:
            problems.append((f"{name}.{key}", f"unknown setting{did_you_mean(str(key), known)}; "
                                              f"[{name}] takes: {', '.join(known)}"))
            continue
        message = type_problem(param.annotation, value)
        if message:
            problems.append((f"{name}.{key}", message))
    for param in known.values():
        if param.required and param.name not in table:
            problems.append((f"{name}.{param.name}", "required setting is missing"))
    if len(problems) > before:
        return
    try:
        section = target(**table)
    except WorkflowError as exc:
        problems.extend(exc.problems)
        return
    except KernelError as exc:
        problems.append((name, str(exc)))
        return
    check = getattr(section, "check", None)
    if callable(check):
        problems.extend(check(workflow) or [])


def check_spec(catalog: Catalog, kind: str | None, use, params, where: str, problems: list,
               params_where: str | None = None):
    if not isinstance(use, str) or not use.strip():
        problems.append((f"{where}.use", f"expected the name of a component (text), got {_shown(use)}"))
        return
    if not isinstance(params, dict):
        problems.append((params_where or f"{where}.params", f"expected a table of parameters, got {_shown(params)}"))
        return
    try:
        comp = catalog.get(use, kind)
        target = catalog.target(comp)
    except KernelError as exc:
        problems.append((f"{where}.use", str(exc)))
        return None
    before = len(problems)
    check_params(target, params, params_where or f"{where}.params", problems, catalog)
    return target if len(problems) == before else None


def check_params(target, params: dict, where: str, problems: list, catalog: Catalog):
    known = {p.name: p for p in signature_params(target)}
    open_ended = accepts_any(target)
    for key, value in params.items():
        loc = f"{where}.{key}"
        param = known.get(key)
        if param is None:
            if not open_ended:
                problems.append((loc, f"unknown parameter{did_you_mean(str(key), known)}; "
                                      f"it takes: {', '.join(known) or 'no parameters'}"))
            else:
                check_nested_specs(value, loc, problems, catalog)
            continue
        if is_spec(value):
            check_nested_spec(value, loc, problems, catalog)
            continue
        message = type_problem(param.annotation, value)
        if message:
            problems.append((loc, message))
            continue
        check_nested_specs(value, loc, problems, catalog)


def check_nested_spec(value: dict, loc: str, problems: list, catalog: Catalog):
    params = value.get("params", {})
    if not isinstance(params, dict):
        problems.append((f"{loc}.params", f"expected a table of parameters, got {_shown(params)}"))
        return
    nested = {k: v for k, v in value.items() if k not in ("use", "params")} | params
    # written inline, its parameters sit beside `use`: errors name them there (optimizer.lr)
    target = check_spec(catalog, None, value["use"], nested, loc, problems, params_where=loc)
    if target is not None:
        problem = optimizer_problem(target, nested)
        if problem:
            problems.append((loc, problem))


def optimizer_problem(target, params: dict) -> str:
    """'' unless ``target`` is a torch optimizer that refuses ``params`` (``lr = -1``).

    An optimizer checks its values only when it is made, which is after the run exists: it is
    made here on one stand-in parameter, so that the mistake is found with the others.
    """
    import sys

    torch = sys.modules.get("torch")  # an optimizer class was imported, so torch was
    if torch is None or not (isinstance(target, type) and issubclass(target, torch.optim.Optimizer)):
        return ""
    try:
        target([torch.zeros(1, requires_grad=True)], **params)
    except Exception as exc:
        text = first_line(exc)
        return f"{target.__name__} refuses these settings: {text}"
    return ""


def check_nested_specs(value, loc: str, problems: list, catalog: Catalog):
    """Components written inside a list or table parameter (``metrics = [{use = ...}]``)."""
    if is_spec(value):
        check_nested_spec(value, loc, problems, catalog)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_nested_specs(item, f"{loc}[{i}]", problems, catalog)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_nested_specs(item, f"{loc}.{key}", problems, catalog)


def type_problem(annotation, value) -> str:
    """'' when the value fits the annotation (or the annotation cannot be checked), else the reason.

    Pydantic's lax mode would read "0.1" as 0.1 and true as 1: a string or a boolean where a number
    is expected is reported instead, since the target would receive it unconverted.
    """
    if annotation is inspect.Parameter.empty or isinstance(annotation, str) or annotation is object:
        return ""
    try:
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(annotation)
    except Exception:
        return ""  # annotations pydantic cannot check (tensors, modules): let the target judge
    try:
        converted = adapter.validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        why = "" if union else f" ({err['msg']})"  # for a union, pydantic's first reason is one of many
        return f"expected {_type_name(annotation)}, got {_shown(value)}{why}"
    except Exception:
        return ""
    wrong = _coerced(value, converted)
    if wrong is not None:
        what = "a string" if isinstance(wrong, str) else "a boolean"
        hint = "; write the number without quotes" if isinstance(wrong, str) else ""
        return f"expected {_type_name(annotation)}, got {_shown(value)} ({what} is not a number{hint})"
    return ""


def _coerced(value, converted):
    """The part of ``value`` that pydantic turned from text or a boolean into a number, or None."""
    if isinstance(value, (str, bool)):
        number = isinstance(converted, numbers.Number) and not isinstance(converted, bool)
        return value if number and not (isinstance(value, bool) and isinstance(converted, bool)) else None
    if isinstance(value, (list, tuple)) and isinstance(converted, (list, tuple)) and len(value) == len(converted):
        for a, b in zip(value, converted):
            found = _coerced(a, b)
            if found is not None:
                return found
    if isinstance(value, dict) and isinstance(converted, dict):
        for key in value.keys() & converted.keys():
            found = _coerced(value[key], converted[key])
            if found is not None:
                return found
    return None


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(annotation) -> str:
    """An annotation as a person reads it: ``list[str | dict] | Literal["auto"]`` -> a list of str or
    dict, or 'auto'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return ", or ".join(names) if any(" " in n for n in names) else " or ".join(names)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (list, tuple, set) and args:
        return f"a {origin.__name__} of {_type_name(args[0])}"
    name = getattr(annotation, "__name__", None)
    return name if isinstance(annotation, type) and name else str(annotation).replace("typing.", "")
