"""The tuning studies in the report and the dashboard (hook ``kernel_report_sections``).

One section per study among the shown runs (run.json ``"study"``), drawn from the study's snapshot
``<workspace>/studies/<study>.json``, which ``kernel tune`` rewrites after every trial: the page
never opens the study's database (it may be a PostgreSQL server the page cannot or should not
reach). The snapshot's trials are put back into an in-memory Optuna study, and Optuna's own
plotly figures draw it: optimisation history, parameter importances, parallel coordinates, slices.

The dashboard asks every few seconds, so a study's section is drawn again only when its snapshot
file changes (its modification time and size); a missing or damaged snapshot gives a section that
says so, never an exception (which would take the plugin's part off the page).
"""
from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import os
import re
import threading
import warnings
from pathlib import Path

from kernel import Section

#: the states a snapshot's trial may be in; COMPLETE and PRUNED trials go into the rebuilt study
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
#: drawn studies kept, by snapshot file: (its stamp, the drawn body)
_CACHE: dict = {}
_CACHE_SIZE = 64
_LOCK = threading.Lock()
#: the section's own layout (the page's styles apply otherwise); its class names are the plugin's
STYLE = ("<style>.tuning-summary{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start;margin-bottom:12px}"
         ".tuning-note{color:#656d76;font-style:italic}</style>")


def sections(runs, workspace) -> list[Section]:
    """A section per distinct study among ``runs`` (run.json dicts), in the order the runs name them."""
    bodies = [(name, _body(name, Path(workspace))) for name in study_names(runs)]
    out, plotly_given = [], False
    for name, (text, has_figures) in bodies:
        if has_figures and not plotly_given:
            # plotly.js once per page, in the first section that draws: the figures of every later
            # section run after it (a page places sections in order)
            text = f"<script>{plotly_js()}</script>\n{text}"
            plotly_given = True
        out.append(Section(f"Tuning study {name}", text))
    return out


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js from the installed plotly package, read once (the dashboard asks every second)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def study_names(runs) -> list[str]:
    names = []
    for run in runs:
        name = run.get("study") if isinstance(run, dict) else None
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def _stamp(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _body(name: str, workspace: Path) -> tuple[str, bool]:
    """The section's HTML (without plotly.js) and whether it has figures; drawn again only when the
    snapshot file changed."""
    from .study import snapshot_path

    # the name as kernel tune makes a file name of it: whatever a run.json says, a file in studies/
    path = snapshot_path(workspace, name)
    stamp = _stamp(path)
    with _LOCK:
        kept = _CACHE.get(path)
        if kept is not None and kept[0] == stamp:
            return kept[1]
    body = _draw(name, path) if stamp is not None else (_note(
        f"No snapshot of study {name!r}: {path} is missing. `kernel tune` writes it after each trial; "
        "the study may have been run with another workspace (KERNEL_HOME)."), False)
    with _LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[path] = (stamp, body)
    return body


def _note(text: str) -> str:
    return f'<p class="tuning-note">{html.escape(text)}</p>'


# -- reading the snapshot ------------------------------------------------------------------------
class Damaged(ValueError):
    """The snapshot is not what ``kernel tune`` writes."""


def read_snapshot(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise Damaged(f"cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Damaged(f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Damaged(f"holds a {type(data).__name__}, not a study")
    if data.get("direction") not in ("maximize", "minimize"):
        raise Damaged(f"has direction {data.get('direction')!r}, not 'maximize' or 'minimize'")
    if not isinstance(data.get("trials"), list):
        raise Damaged("has no list of trials")
    return data


def _draw(name: str, path: Path) -> tuple[str, bool]:
    try:
        snapshot = read_snapshot(path)
    except Damaged as exc:
        return _note(f"The snapshot of study {name!r}, {path}, {exc}; it is rewritten after the "
                     "study's next trial."), False
    if snapshot.get("study") not in (None, name):  # two names that make the same file name
        return _note(f"The snapshot {path} is of study {snapshot.get('study')!r}, not {name!r}."), False
    return _draw_study(name, snapshot)


def _draw_study(name: str, snapshot: dict) -> tuple[str, bool]:
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" lines
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings are not the reader's
            study, problems = rebuild(snapshot)
            figures = _figures(name, study, snapshot)
    finally:
        optuna.logging.set_verbosity(level)
    parts = [STYLE, _summary(snapshot, study)]
    if problems:
        parts.append(_note(f"{len(problems)} trial{'s' if len(problems) > 1 else ''} of the snapshot could not "
                           f"be read and {'are' if len(problems) > 1 else 'is'} left out (first: {problems[0]})."))
    parts.extend(figures)
    return "\n".join(parts), any("plotly-graph-div" in f for f in figures)


def rebuild(snapshot: dict):
    """An in-memory Optuna study holding the snapshot's COMPLETE and PRUNED trials, and the
    problems of the trials that could not be put back (as text)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(direction=snapshot["direction"])
    problems = []
    for i, trial in enumerate(snapshot["trials"]):
        if not isinstance(trial, dict) or trial.get("state") not in ("COMPLETE", "PRUNED"):
            continue
        try:
            study.add_trial(create_trial(state=TrialState[trial["state"]], value=_value(trial),
                                         params=_params(trial), distributions=_distributions(trial),
                                         intermediate_values=_intermediate(trial),
                                         user_attrs={"run": trial.get("run")}))
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"trial {trial.get('number', i)}: {exc}")
    return study, problems


def _value(trial: dict):
    value = trial.get("value")
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if trial["state"] == "PRUNED":  # its value is only its last intermediate one: it may lack
        return float(value) if finite else None
    if not finite:
        raise ValueError(f"its value {value!r} is not a finite number")
    return float(value)


def _params(trial: dict) -> dict:
    params = trial.get("params")
    if not isinstance(params, dict):
        raise ValueError("it has no params")
    return params


def _distributions(trial: dict) -> dict:
    from optuna.distributions import json_to_distribution

    given = trial.get("distributions")
    if not isinstance(given, dict):
        raise ValueError("it has no distributions")
    return {name: json_to_distribution(text if isinstance(text, str) else json.dumps(text))
            for name, text in given.items()}


def _intermediate(trial: dict) -> dict:
    given = trial.get("intermediate") or {}
    if not isinstance(given, dict):
        raise ValueError("its intermediate values are not a table")
    return {int(step): float(v) for step, v in given.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


# -- what the page shows ---------------------------------------------------------------------------
def _summary(snapshot: dict, study) -> str:
    """Where the study stands: the best trial and the trials by state, as small tables."""
    counts = {}
    for trial in snapshot["trials"]:
        state = trial.get("state") if isinstance(trial, dict) else None
        state = state if state in STATES else "other"
        counts[state] = counts.get(state, 0) + 1
    monitor = snapshot.get("monitor") if isinstance(snapshot.get("monitor"), str) else "value"
    facts = [("workflow", snapshot.get("workflow")), ("objective", f"{snapshot['direction']} {monitor}"),
             ("trials wanted", snapshot.get("trials_wanted")), ("storage", snapshot.get("storage")),
             ("updated", snapshot.get("updated"))]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts if v)
    states = "".join(f"<tr><th>{html.escape(s)}</th><td class=\"num\">{counts[s]}</td></tr>"
                     for s in (*STATES, "other") if counts.get(s))
    return (f'<div class="tuning-summary"><table class="tuning-facts">{rows}</table>'
            f'{_best_table(snapshot, study, monitor)}'
            f'<table class="tuning-states"><tr><th colspan="2">trials by state</th></tr>'
            f'{states or "<tr><td colspan=2>no trial yet</td></tr>"}</table></div>{_failures(snapshot)}')


def _failures(snapshot: dict, shown: int = 5) -> str:
    """Why the last few failed trials failed (their run's reason), when the snapshot says."""
    failed = [t for t in snapshot["trials"] if isinstance(t, dict) and t.get("state") == "FAIL" and t.get("reason")]
    if not failed:
        return ""
    items = "".join(f"<li>trial {html.escape(str(t.get('number')))}: {html.escape(str(t['reason']))}</li>"
                    for t in failed[-shown:])
    more = f" (the last {shown} of {len(failed)})" if len(failed) > shown else ""
    return f'<p class="tuning-note">Failed trials{more}:</p><ul class="tuning-failures">{items}</ul>'


def _best_table(snapshot: dict, study, monitor: str) -> str:
    best = snapshot.get("best")
    if not isinstance(best, dict):
        complete = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
        if not complete:
            return _note("No complete trial yet: no best trial.")
        pick = max if snapshot["direction"] == "maximize" else min
        trial = pick(complete, key=lambda t: t.value)
        best = {"number": trial.number, "value": trial.value, "params": trial.params,
                "run": trial.user_attrs.get("run")}
    params = best.get("params") if isinstance(best.get("params"), dict) else {}
    rows = [("trial", best.get("number")), (monitor, best.get("value")), ("run", best.get("run")),
            *((f"{k}", v) for k, v in params.items())]
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_show(v))}</td></tr>" for k, v in rows)
    return f'<table class="tuning-best"><tr><th colspan="2">best trial</th></tr>{cells}</table>'


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _figures(name: str, study, snapshot: dict) -> list[str]:
    """Optuna's charts of the study, each a plotly figure's HTML (plotly.js left out), or a line
    saying why a chart is not there."""
    from optuna import visualization as vis
    from optuna.importance import FanovaImportanceEvaluator

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return [_note("No complete trial yet: the charts appear with the first.")]
    target = snapshot.get("monitor") if isinstance(snapshot.get("monitor"), str) else "Objective Value"
    slug = _slug(name)
    out = [_figure(f"{slug}-history", "optimisation history", 420,
                   lambda: vis.plot_optimization_history(study, target_name=target))]
    if len(complete) < 2:
        out.append(_note("Parameter importances need at least 2 complete trials."))
    else:
        # a fixed seed: the same trials give the same importances on every rebuild
        evaluator = FanovaImportanceEvaluator(seed=0)
        out.append(_figure(f"{slug}-importances", "parameter importances", 360, importances=True, make=lambda:
                           vis.plot_param_importances(study, evaluator=evaluator, target_name=target)))
    out.append(_figure(f"{slug}-parallel", "parallel coordinates", 420,
                       lambda: vis.plot_parallel_coordinate(study, target_name=target)))
    out.append(_figure(f"{slug}-slices", "slices", 400, lambda: vis.plot_slice(study, target_name=target)))
    return out


def _figure(div_id: str, what: str, height: int, make, importances: bool = False) -> str:
    """``make()``'s figure as HTML in an element of id ``div_id``, or a line saying why not."""
    try:
        fig = make()
    except Exception as exc:  # noqa: BLE001 - one chart that cannot be drawn must not hide the others
        reason = f"{type(exc).__name__}: {exc}"
        if "zero total variance" in str(exc):
            reason = "the complete trials all have the same value, so no parameter explains any of it"
        return _note(f"No {what}: {reason}.")
    if importances and not (fig.data and len(fig.data[0].x or ())):
        return _note("No parameter importances: no parameter is set in every complete trial "
                     "(parameters that exist only under a `when` cannot be compared).")
    fig.update_layout(height=height, margin={"t": 50, "r": 30, "b": 50, "l": 60})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _slug(name: str) -> str:
    """An element id part for a study: readable, and distinct for names that differ only in
    characters an id leaves out."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "study"
    return f"tuning-{readable}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"
