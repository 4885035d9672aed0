"""What a study leaves the user: the best trial, a table of the top ones, and the best values as
an overrides file that ``kernel run FILE --set-file best.toml`` reproduces exactly."""
from __future__ import annotations

import math
from pathlib import Path

from .study import FAILED, SURPLUS, finished


def toml_value(value) -> str:
    """A value as TOML writes it; floats as Python's shortest exact form, so they read back bit for bit."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"{type(value).__name__} has no TOML form")


def overrides_text(tuner, trial) -> str:
    from .space import decode

    lines = [f"# The best trial of study {tuner.name!r}: trial {trial.number}, {tuner.monitor} = {trial.value!r}",
             f"# kernel run {tuner.workflow.source or 'WORKFLOW.toml'} --set-file THIS_FILE"]
    for path, value in sampled_values(trial).items():
        lines.append(f"{toml_value(path)} = {toml_value(decode(value))}")
    return "\n".join(lines) + "\n"


def sampled_values(trial) -> dict:
    """The workflow values of a trial, path -> value (choices of lists or tables decoded)."""
    from .space import decode

    return {path: decode(value) for path, value in trial.params.items()}


def write_overrides(tuner, trial, path: Path | None = None) -> Path:
    from .study import snapshot_path

    path = Path(path) if path else snapshot_path(tuner.workspace, tuner.name).with_suffix(".best.toml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(overrides_text(tuner, trial), encoding="utf-8")
    return path


def best_trial(study):
    """The best completed trial, or None (Optuna raises when there is none)."""
    try:
        return study.best_trial
    except ValueError:
        return None


def summary(study) -> dict:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if SURPLUS not in t.user_attrs]
    return {"finished": sum(finished(t) for t in trials),
            "completed": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL and FAILED in t.user_attrs for t in trials),
            "lost": sum(t.state == TrialState.FAIL and FAILED not in t.user_attrs for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials)}


def top_trials(study, direction: str, count: int = 10) -> list:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=direction == "maximize")[:count]


def print_results(tuner, study, overrides: Path | None = None):
    """The best trial, its values and score, a table of the top trials, and the command that reproduces it.
    Plain lines (a path or a run id is never folded); rich draws only the table."""
    import sys

    from rich.console import Console
    from rich.table import Table

    # into a file or pipe: wide enough that the table is not folded
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    counts = summary(study)
    print(f"study {tuner.name!r} ({tuner.shown_url}): {counts['finished']} finished trial(s): "
          f"{counts['completed']} completed, {counts['pruned']} pruned, {counts['failed']} failed"
          + (f"; {counts['lost']} lost with their worker" if counts["lost"] else "")
          + (f"; {counts['running']} running" if counts["running"] else ""))
    best = best_trial(study)
    if best is None:
        print("no trial has completed yet")
        return
    print(f"best trial: {best.number}  {tuner.monitor} = {best.value:.6g}  run {best.user_attrs.get('run')}")
    for path, value in sampled_values(best).items():
        print(f"  {path} = {toml_value(value)}")
    table = Table(title=f"top trials by {tuner.monitor}", title_justify="left")
    paths = list(dict.fromkeys(p for t in top_trials(study, tuner.direction) for p in t.params))
    for header in ["trial", tuner.monitor, *paths, "run"]:
        table.add_column(header, overflow="fold")
    for t in top_trials(study, tuner.direction):
        values = sampled_values(t)
        table.add_row(str(t.number), f"{t.value:.6g}", *[_short(values[p]) if p in values else "-" for p in paths],
                      short_run(t.user_attrs.get("run")))
    console.print(table)
    if overrides is not None:
        import shlex

        source = tuner.workflow.source or "WORKFLOW.toml"
        sets = " ".join(f"--set {shlex.quote(f'{path}={toml_value(value)}')}" for path, value in sampled_values(best).items())
        print(f"best values written to {overrides}\n"
              f"reproduce: kernel run {source} --set-file {overrides}\n"
              f"       or: kernel run {source} {sets}")


def short_run(run_id) -> str:
    """The end of a run id after its workflow, model and date (``105728-a6ae``): the kernel's commands
    take a unique end of an id, and the full id is in the best trial's line above the table."""
    if not run_id:
        return "-"
    parts = str(run_id).rsplit("-", 2)
    return "-".join(parts[-2:]) if len(parts) == 3 else str(run_id)


def _short(value) -> str:
    text = toml_value(value) if not isinstance(value, float) else f"{value:.4g}"
    return text if len(text) <= 30 else text[:27] + "..."
