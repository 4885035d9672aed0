"""Optuna's samplers and pruners by the names ``[tuning]`` uses, or any class by import path."""
from __future__ import annotations

import inspect

from kernel import KernelError


def make_sampler(choice: tuple, params: list, seed: int):
    import optuna.samplers as S

    name, settings = choice
    where = "tuning.sampler"
    if name == "grid":
        grid = {p.path: p.grid(f'tuning.space."{p.path}"') for p in params}
        return _build(S.GridSampler, {"search_space": grid, "seed": seed, **settings}, where)
    known = {"tpe": S.TPESampler, "random": S.RandomSampler, "cmaes": S.CmaEsSampler, "qmc": S.QMCSampler}
    cls = known.get(name) or _imported(name, where)
    return _build(cls, {"seed": seed, **settings} if _takes(cls, "seed") else settings, where)


def make_pruner(choice: tuple, epochs: int | None):
    import optuna.pruners as P

    name, settings = choice
    where = "tuning.pruner"
    if name == "none":
        return P.NopPruner()
    defaults = {"median": (P.MedianPruner, {}),
                "percentile": (P.PercentilePruner, {"percentile": 25.0}),
                # a trial's resource is its epochs: the brackets fit the workflow's training
                "hyperband": (P.HyperbandPruner, {"min_resource": 1, "max_resource": epochs or "auto"}),
                "successive_halving": (P.SuccessiveHalvingPruner, {})}
    cls, base = defaults.get(name) or (_imported(name, where), {})
    return _build(cls, {**base, **settings}, where)


def _imported(path: str, where: str):
    import kernel

    try:
        return kernel.resolve_target(path, where)
    except KernelError as exc:
        raise KernelError(f"{where}: {exc}") from None


def _takes(cls, name: str) -> bool:
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _build(cls, settings: dict, where: str):
    try:
        return cls(**settings)
    except (TypeError, ValueError) as exc:  # a setting it does not take, or a value it refuses
        shown = ", ".join(f"{k} = {v!r}" for k, v in settings.items() if k != "search_space")
        raise KernelError(f"{where}: {getattr(cls, '__name__', cls)}({shown}) fails: {exc}") from None
