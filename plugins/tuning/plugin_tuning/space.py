"""The search space of ``[tuning] space``: one distribution per dotted workflow path.

```toml
[tuning.space]
"trainer.optimizer.lr" = { float = [1e-4, 1e-1], log = true }
"trainer.batch_size" = { int = [16, 256], step = 16 }
"models[0].use" = { choice = ["kernel.mlp", "kernel.linear"] }
"models[0].params.dropout" = { float = [0.0, 0.5], when = { "models[0].use" = "kernel.mlp" } }
```

A parameter with ``when`` exists only when the earlier parameters it names have those values
(one value, or a list of accepted ones): Optuna's define-by-run space samples it only then.
Optuna's parameter names are the paths themselves, so studies, reports and overrides files all
speak the workflow's language. Nothing here imports Optuna until a trial asks for a value.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from kernel import KernelError

KINDS = ("float", "int", "choice")
_KEYS = {"float": {"float", "log", "step", "when"}, "int": {"int", "log", "step", "when"},
         "choice": {"choice", "when"}}


@dataclass
class Param:
    """One dimension of the space: ``path`` is both the workflow path and Optuna's name for it."""

    path: str
    kind: str  # float | int | choice
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list = field(default_factory=list)
    when: dict = field(default_factory=dict)  # earlier path -> list of accepted values

    # -- Optuna ------------------------------------------------------------------------------
    def suggest(self, trial):
        """The value for this trial, in the workflow's terms."""
        if self.kind == "float":
            return trial.suggest_float(self.path, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.path, self.low, self.high, log=self.log, step=self.step or 1)
        return decode(trial.suggest_categorical(self.path, self.labels()))

    def labels(self) -> list:
        """Optuna's categories: the values themselves when they are scalars, else their JSON text
        (Optuna stores only None, bools, numbers and text)."""
        return [c if _scalar(c) else encode(c) for c in self.choices]

    def applies(self, sampled: dict) -> bool:
        """Whether the parameter exists, given the values sampled before it."""
        return all(path in sampled and sampled[path] in accepted for path, accepted in self.when.items())

    # -- what a user reads -------------------------------------------------------------------
    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(_shown(c) for c in self.choices)
        else:
            text = f"{self.kind} in [{self.low}, {self.high}]" + (", log" if self.log else "") + (
                f", step {self.step}" if self.step is not None else "")
        if self.when:
            text += "; when " + " and ".join(f"{p} is {' or '.join(_shown(v) for v in vs)}"
                                            for p, vs in self.when.items())
        return text

    def examples(self) -> list:
        """Values that stand for the whole range when checking the workflow: both ends, every choice."""
        if self.kind == "choice":
            return list(self.choices)
        return [self.low, self.high]

    def grid(self, where: str) -> list:
        """Every value, for the grid sampler; a continuous range has none."""
        if self.kind == "choice":
            return self.labels()
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise KernelError(f"{where}: the grid sampler needs every value: give this float range a "
                              f"step, or make it a choice")
        count = int(round((self.high - self.low) / self.step))
        return [self.low + i * self.step for i in range(count + 1)]


def encode(value) -> str:
    return json.dumps(value, sort_keys=True)


def decode(label):
    """A category back to the workflow value (JSON text for lists and tables)."""
    if isinstance(label, str) and label[:1] in "[{":
        try:
            return json.loads(label)
        except ValueError:
            return label
    return label


def _scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_space(space: dict, where: str = "tuning.space") -> tuple[list[Param], list[tuple[str, str]]]:
    """The parameters of a ``space`` table, in the order written, and the problems found, each
    located as ``tuning.space."PATH"``."""
    params, problems = [], []
    if not isinstance(space, dict) or not space:
        return [], [(where, "the search space is empty: map dotted workflow paths to distributions, e.g. "
                            '"trainer.optimizer.lr" = { float = [1e-4, 1e-1], log = true }')]
    seen: dict[str, Param] = {}
    for path, spec in space.items():
        loc = f'{where}."{path}"'
        try:
            param = parse_param(path, spec, loc, seen)
        except KernelError as exc:
            problems.append((loc, str(exc)))
            continue
        seen[path] = param
        params.append(param)
    return params, problems


def parse_param(path: str, spec, loc: str, earlier: dict) -> Param:
    if not isinstance(spec, dict):
        raise KernelError(f"expected a distribution such as {{ float = [lo, hi] }}, {{ int = [lo, hi] }} or "
                          f"{{ choice = [...] }}, got {_shown(spec)}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise KernelError("give exactly one of float, int or choice" + (
            f", not {' and '.join(kinds)}" if kinds else f" (it has {', '.join(map(str, spec)) or 'nothing'})"))
    kind = kinds[0]
    unknown = set(spec) - _KEYS[kind]
    if unknown:
        from kernel import did_you_mean

        name = sorted(unknown)[0]
        raise KernelError(f"{kind}: unknown key {name!r}{did_you_mean(name, _KEYS[kind])}; "
                          f"it takes {', '.join(sorted(_KEYS[kind]))}")
    when = _when(spec.get("when"), earlier)
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, list) or not choices:
            raise KernelError("choice: expected a non-empty list of values")
        if len({encode(c) for c in choices}) != len(choices):
            raise KernelError("choice: a value is listed twice")
        return Param(path, kind, choices=list(choices), when=when)
    bounds = spec[kind]
    number = (int,) if kind == "int" else (int, float)
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds)):
        raise KernelError(f"{kind}: expected [low, high], two {'integers' if kind == 'int' else 'numbers'}, "
                          f"got {_shown(bounds)}")
    low, high = bounds
    if not all(math.isfinite(b) for b in bounds):
        raise KernelError(f"{kind}: the bounds must be finite, got {_shown(bounds)}")
    if low > high:
        raise KernelError(f"{kind}: the range [{low}, {high}] is reversed: write [{high}, {low}]")
    if low == high:
        raise KernelError(f"{kind}: the range [{low}, {high}] is empty; to fix the value, "
                          f"use --set {path}={low} instead of tuning it")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise KernelError(f"log: expected true or false, got {_shown(log)}")
    if log and low <= 0:
        raise KernelError(f"{kind}: log = true needs a positive range, and {low} is not above 0")
    step = spec.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise KernelError(f"step: expected a positive {'integer' if kind == 'int' else 'number'}, got {_shown(step)}")
        if log:
            raise KernelError("step: Optuna cannot step a log range; drop one of log and step")
        if step > high - low:
            raise KernelError(f"step: {step} is wider than the range [{low}, {high}]")
    if kind == "float":
        low, high = float(low), float(high)
    return Param(path, kind, low, high, log, step, when=when)


def _when(value, earlier: dict) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise KernelError('when: expected a table of earlier paths and their values, e.g. '
                          'when = { "models[0].use" = "kernel.mlp" }')
    out = {}
    for path, accepted in value.items():
        if path not in earlier:
            from kernel import did_you_mean

            raise KernelError(f"when: {path!r} is not a parameter written before this one in the space"
                              f"{did_you_mean(path, list(earlier))}")
        accepted = accepted if isinstance(accepted, list) else [accepted]
        param = earlier[path]
        if param.kind == "choice":
            wrong = [v for v in accepted if encode(v) not in {encode(c) for c in param.choices}]
            if wrong:
                raise KernelError(f"when: {_shown(wrong[0])} is not among the choices of {path!r}")
        out[path] = accepted
    return out


def sample(trial, params: list[Param]) -> dict:
    """The values of one trial, path -> value; a parameter whose condition fails is left out."""
    sampled: dict = {}
    for param in params:
        if param.applies(sampled):
            sampled[param.path] = param.suggest(trial)
    return sampled
