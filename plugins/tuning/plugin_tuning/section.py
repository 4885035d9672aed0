"""The ``[tuning]`` table of a workflow file: what to search and how (hook ``kernel_sections``).

The kernel hands the table's keys to :class:`Tuning` as parameters, so the signature below is
the table's reference (``kernel show tuning``), and the kernel reports unknown keys and wrong
types; :meth:`Tuning.check` checks the rest against the whole workflow, before anything runs.
"""
from __future__ import annotations

from kernel import KernelError, did_you_mean

from .space import parse_space

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "grid")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
DIRECTIONS = ("maximize", "minimize", "auto")


class Tuning:
    """The search space and the study's settings for ``kernel tune``.

    Args:
        space: dotted workflow paths (as ``--set`` takes them) mapped to distributions:
            ``{ float = [lo, hi], log = true }``, ``{ int = [lo, hi], step = 16 }``,
            ``{ choice = [...] }``; ``when = { "PATH" = VALUE }`` makes a parameter exist only for
            that value of an earlier one.
        trials: how many trials the study ends with (completed, pruned, or failed by their run).
        timeout: seconds after which a worker starts no new trial (none: no limit).
        direction: "maximize", "minimize", or "auto" (the way the monitor is better).
        monitor: the metric each trial is scored by, its best epoch counting ("auto": the trainer's).
        sampler: "tpe", "random", "cmaes", "qmc", "grid", or an import path; a table
            ``{ use = "tpe", n_startup_trials = 5 }`` passes settings to it.
        pruner: "median", "percentile", "hyperband", "successive_halving", "none", or an import
            path; a table passes settings, as for the sampler.
        seed: the sampler's seed (default: the workflow's seed).
        study: the study's name (default: the workflow's name).
        storage: an Optuna storage URL (default: SQLite in the workspace); a PostgreSQL URL lets
            workers on several machines share one study.
        model: which model a trial trains when the workflow lists several: its index or name.
        heartbeat: seconds between a worker's heartbeats; a trial whose worker has been silent for
            two of them is marked failed.
        retries: how many times a trial whose worker died is tried again (0: it stays failed).
    """

    def __init__(self, space: dict, trials: int = 20, timeout: float | None = None, direction: str = "auto",
                 monitor: str = "auto", sampler: str | dict = "tpe", pruner: str | dict = "median",
                 seed: int | None = None, study: str | None = None, storage: str | None = None,
                 model: int | str | None = None, heartbeat: int = 10, retries: int = 1):
        problems = []
        self.params, found = parse_space(space)
        problems += found
        self.trials, self.timeout, self.direction, self.monitor = trials, timeout, direction, monitor
        self.seed, self.study, self.storage, self.model = seed, study, storage, model
        self.heartbeat, self.retries = heartbeat, retries
        self.sampler = _named(sampler, SAMPLERS, "tuning.sampler", problems)
        self.pruner = _named(pruner, PRUNERS, "tuning.pruner", problems)
        for key, value, low in (("trials", trials, 1), ("heartbeat", heartbeat, 1), ("retries", retries, 0)):
            if value < low:
                problems.append((f"tuning.{key}", f"expected {low} or more, got {value}"))
        if timeout is not None and timeout <= 0:
            problems.append(("tuning.timeout", f"expected a number of seconds above 0, got {timeout}"))
        if direction not in DIRECTIONS:
            problems.append(("tuning.direction", f"expected maximize, minimize or auto, got {direction!r}"
                                                 f"{did_you_mean(str(direction), DIRECTIONS)}"))
        if isinstance(study, str) and not study.strip():
            problems.append(("tuning.study", "a study needs a name"))
        if problems:
            raise _problems(problems)

    # -- the whole workflow ------------------------------------------------------------------
    def check(self, workflow) -> list[tuple[str, str]]:
        """Every path and value of the space against the workflow; the monitor against the direction;
        the storage URL's form. Returns problems located as the user writes them."""
        problems = []
        try:
            self.model_index(workflow)
        except KernelError as exc:
            problems.append(("tuning.model", str(exc)))
            return problems
        base = workflow.without_sections()
        known = {str(p) for p in _problems_of(base)}  # the kernel reports those itself
        for param in self.params:
            loc = f'tuning.space."{param.path}"'
            conditions = {path: accepted[0] for path, accepted in param.when.items()}
            for value in param.examples():
                found = _problems_of(base, {**conditions, param.path: value})
                new = [(where, message) for where, message in found if str((where, message)) not in known]
                if new:
                    where, message = new[0]
                    shown = f"{param.path} = {value!r}" if param.kind == "choice" else param.path
                    if where and where != param.path:
                        message = f"{where}: {message}"
                    problems.append((loc, f"{shown}: {message}" if param.kind == "choice" else message))
                    break
        problems += self._direction_problems(workflow)
        if self.storage is not None:
            from .storage import url_problem

            problem = url_problem(self.storage)
            if problem:
                problems.append(("tuning.storage", problem))
        return problems

    def model_index(self, workflow) -> int:
        """The model a trial trains: ``model`` when given, else the only one."""
        models = workflow.models
        labels = [workflow.model_label(i) for i in range(len(models))]
        if self.model is None:
            if len(models) > 1:
                raise KernelError(f"the workflow lists {len(models)} models ({', '.join(labels)}) and a trial trains "
                                  f"one: name it with model = {labels[0]!r} (or an index), or tune the choice "
                                  f'with "models[0].use" = {{ choice = [...] }}')
            return 0
        if isinstance(self.model, int) and not isinstance(self.model, bool):
            if not 0 <= self.model < len(models):
                raise KernelError(f"index {self.model} is out of range (there are {len(models)} models)")
            return self.model
        if self.model not in labels:
            raise KernelError(f"no model named {self.model!r}{did_you_mean(str(self.model), labels)}; "
                              f"the models are {', '.join(labels)}")
        return labels.index(self.model)

    def _direction_problems(self, workflow) -> list:
        from kernel import mode_for

        trainer = workflow.trainer.params
        explicit = self.monitor != "auto"
        monitor = self.monitor if explicit else trainer.get("monitor")
        if self.direction == "auto" or monitor in (None, "auto"):
            return []
        # the trainer's own mode is its word on its own monitor; any other metric goes by its name
        mode = trainer["mode"] if not explicit and trainer.get("mode") in ("min", "max") else mode_for(monitor)
        wanted = "maximize" if mode == "max" else "minimize"
        if self.direction != wanted:
            return [("tuning.direction", f"{self.direction!r} contradicts the monitor {monitor}, which is better "
                                         f"{'high' if mode == 'max' else 'low'}: use direction = {wanted!r}, or "
                                         f"leave it out (it follows the monitor)")]
        return []


def _named(value, names: tuple, where: str, problems: list):
    """A sampler or pruner setting as ``(name, settings)``."""
    settings = {}
    if isinstance(value, dict):
        settings = {k: v for k, v in value.items() if k != "use"}
        value = value.get("use")
    if not isinstance(value, str) or not value:
        problems.append((where, f"expected one of {', '.join(names)} or an import path (or a table with use = ...)"))
        return None, {}
    if value not in names and ":" not in value and "." not in value:
        problems.append((where, f"unknown {where.split('.')[-1]} {value!r}{did_you_mean(value, names)}; "
                                f"choose {', '.join(names)}, or an import path such as mypkg.samplers:MySampler"))
    return value, settings


def _problems_of(workflow, overrides: dict | None = None) -> list[tuple[str, str]]:
    """The validation problems of the workflow with ``overrides`` set, as (location, message)."""
    try:
        (workflow.with_overrides(overrides) if overrides else workflow).validate_components()
    except KernelError as exc:
        return list(getattr(exc, "problems", None) or [("", str(exc))])
    return []


def _problems(problems: list) -> KernelError:
    from kernel import WorkflowError

    return WorkflowError(problems)
