"""The tuning section of the report and the dashboard (``plugin_tuning.report_section``), drawn from
a study's snapshot that these tests make from a real Optuna study, in the format ``kernel tune``
writes: the tables and Optuna's four charts, a missing or damaged snapshot said in words, plotly.js
once per page (also in a report written by the real ``kernel report``)."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugin_tuning.report_section import read_snapshot, rebuild, sections

PRUNED = (2, 5)  # the trials the objective prunes at its first epoch


def quadratic_study(trials: int = 8, direction: str = "maximize", flat: bool = False):
    """A real study of a quadratic objective in a log-scaled learning rate, an int and a choice;
    trials 2 and 5 pruned after their first epoch. ``flat``: every trial scores the same."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("trainer.optimizer.lr", 1e-3, 1e-1, log=True)
        hidden = trial.suggest_int("models[0].params.hidden", 16, 128, step=16)
        use = trial.suggest_categorical("models[0].use", ["kernel.mlp", "kernel.linear"])
        value = 0.9 if flat else 1 - (math.log10(lr) + 2) ** 2 / 4 - (hidden - 64) ** 2 / 1e4 + 0.05 * (use == "kernel.mlp")
        for epoch in (1, 2):
            trial.report(value - 0.1 * (2 - epoch), epoch)
            if trial.number in PRUNED and epoch == 1:
                raise optuna.TrialPruned()
        return value

    try:
        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(level)
    return study


def snapshot_of(study, name: str, workflow: str = "synthetic", monitor: str = "valid/accuracy") -> dict:
    """The study as ``<workspace>/studies/<name>.json`` holds it (what ``kernel tune`` writes)."""
    from optuna.distributions import distribution_to_json

    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
               "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
               "run": f"{workflow}-mlp-20261204-1100{t.number:02d}-ab{t.number:02d}",
               "start": "2026-12-04T10:59:00Z", "complete": "2026-12-04T11:00:00Z"} for t in study.trials]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    pick = max if study.direction.name == "MAXIMIZE" else min
    best = pick(done, key=lambda t: t["value"]) if done else None
    return {"study": name, "workflow": workflow, "direction": study.direction.name.lower(), "monitor": monitor,
            "storage": "sqlite:////tmp/studies.sqlite3", "updated": "2026-12-04T11:00:00.000Z", "trials": trials,
            "best": {k: best[k] for k in ("number", "value", "params", "run")} if best else None}


def write_snapshot(workspace: Path, snapshot: dict) -> Path:
    path = Path(workspace) / "studies" / f"{snapshot['study']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=1))
    return path


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_ids(text: str) -> list[str]:
    return re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', text)


@pytest.fixture(scope="module")
def study():
    return quadratic_study()


@pytest.fixture
def home(tmp_path):
    """A workspace folder (``studies/`` is made by write_snapshot)."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder


# -- a study -------------------------------------------------------------------------------------
def test_a_study_gives_its_tables_and_four_charts(home, study):
    snapshot = snapshot_of(study, "quad")
    write_snapshot(home, snapshot)
    runs = [{"id": t["run"], "study": "quad", "trial": t["number"]} for t in snapshot["trials"]]
    (section,) = sections(runs + [{"id": "untuned"}], home)
    assert section.title == "Tuning study quad"
    ids = figure_ids(section.html)
    assert [i.rsplit("-", 1)[1] for i in ids] == ["history", "importances", "parallel", "slices"]
    assert all(i.startswith("tuning-quad-") for i in ids)
    assert section.html.count(plotly_js()) == 1
    assert "https://" not in section.html.replace(plotly_js(), "")  # no CDN, nothing fetched
    best = study.best_trial
    table = section.html.split('class="tuning-best"', 1)[1].split("</table>", 1)[0]
    assert f"<th>trial</th><td>{best.number}</td>" in table
    assert f"<th>valid/accuracy</th><td>{best.value:.6g}</td>" in table
    assert snapshot["best"]["run"] in table and "<th>models[0].use</th>" in table
    assert '<th>COMPLETE</th><td class="num">6</td>' in section.html
    assert '<th>PRUNED</th><td class="num">2</td>' in section.html
    assert "maximize valid/accuracy" in section.html


def test_the_rebuilt_study_holds_the_studys_trials(study):
    rebuilt, problems = rebuild(snapshot_of(study, "quad"))
    assert problems == []
    assert [(t.number, t.state.name) for t in rebuilt.trials] == [(t.number, t.state.name) for t in study.trials]
    assert rebuilt.best_value == study.best_value and rebuilt.best_params == study.best_params
    pruned = rebuilt.trials[PRUNED[0]]
    assert pruned.intermediate_values == study.trials[PRUNED[0]].intermediate_values == {1: pytest.approx(pruned.value)}
    assert rebuilt.trials[0].user_attrs["run"].startswith("synthetic-mlp-")


def test_plotly_js_is_inlined_once_for_several_studies(home, study):
    write_snapshot(home, snapshot_of(study, "first"))
    write_snapshot(home, snapshot_of(quadratic_study(6, "minimize"), "second"))
    runs = [{"study": "first"}, {"study": "missing"}, {"study": "second"}, {"study": "first"}]
    out = sections(runs, home)
    assert [s.title for s in out] == ["Tuning study first", "Tuning study missing", "Tuning study second"]
    bundle = plotly_js()
    assert [s.html.count(bundle) for s in out] == [1, 0, 0]
    assert out[0].html.startswith(f"<script>{bundle}</script>")  # before the figures that need it
    ids = figure_ids(out[0].html) + figure_ids(out[2].html)
    assert len(ids) == 8 and len(set(ids)) == 8  # every figure its own element
    assert "minimize valid/accuracy" in out[2].html


def test_the_first_study_that_draws_carries_plotly_js(home, study):
    write_snapshot(home, snapshot_of(study, "drawn"))
    out = sections([{"study": "missing"}, {"study": "drawn"}], home)
    assert [s.html.count(plotly_js()) for s in out] == [0, 1]


# -- what cannot be drawn ----------------------------------------------------------------------------
def test_a_missing_snapshot_says_which_file(home):
    (section,) = sections([{"study": "lost"}], home)
    assert section.title == "Tuning study lost"
    assert str(home / "studies" / "lost.json") in section.html and "is missing" in section.html
    assert "<script" not in section.html


@pytest.mark.parametrize("content, words", [
    (b'{"study": "broken", "direc', "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not valid JSON"),
    (b"[1, 2]", "holds a list, not a study"),
    (b'{"study": "broken", "direction": "up", "trials": []}', "has direction &#x27;up&#x27;"),
    (b'{"study": "broken", "direction": "maximize", "trials": {"0": {}}}', "has no list of trials"),
])
def test_a_damaged_snapshot_says_so(home, content, words):
    path = home / "studies" / "broken.json"
    path.parent.mkdir()
    path.write_bytes(content)
    (section,) = sections([{"study": "broken"}], home)
    assert str(path) in section.html and words in section.html
    assert "<script" not in section.html


def test_a_damaged_trial_is_left_out_and_the_rest_drawn(home, study):
    snapshot = snapshot_of(study, "partly")
    snapshot["trials"][0]["params"]["trainer.optimizer.lr"] = 5.0  # outside its distribution
    snapshot["trials"][1]["distributions"] = {"trainer.optimizer.lr": "{not json"}
    snapshot["trials"][3]["value"] = None  # a COMPLETE trial without a value
    snapshot["trials"].append("not a trial")
    write_snapshot(home, snapshot)
    (section,) = sections([{"study": "partly"}], home)
    assert "3 trials of the snapshot could not be read and are left out (first: trial 0:" in section.html
    assert len(figure_ids(section.html)) == 4
    assert '<th>other</th><td class="num">1</td>' in section.html


def test_importances_need_two_complete_trials(home):
    snapshot = snapshot_of(quadratic_study(3), "short")  # trials 0 and 1 complete, 2 pruned
    snapshot["trials"] = [t for t in snapshot["trials"] if t["number"] != 1]  # one complete trial left
    write_snapshot(home, snapshot)
    (section,) = sections([{"study": "short"}], home)
    assert "Parameter importances need at least 2 complete trials." in section.html
    assert [i.rsplit("-", 1)[1] for i in figure_ids(section.html)] == ["history", "parallel", "slices"]


def test_importances_of_trials_that_all_score_the_same_say_why_not(home):
    write_snapshot(home, snapshot_of(quadratic_study(5, flat=True), "flat"))
    (section,) = sections([{"study": "flat"}], home)
    assert "No parameter importances: the complete trials all have the same value" in section.html
    assert len(figure_ids(section.html)) == 3


def test_a_study_without_a_complete_trial_has_no_charts_and_no_plotly(home, study):
    snapshot = snapshot_of(study, "early")
    for trial in snapshot["trials"]:
        if trial["state"] == "COMPLETE":
            trial.update(state="RUNNING", value=None)
    snapshot["trials"][0].update(state="FAIL", reason="the run failed: CUDA out of memory")
    snapshot["best"] = None
    write_snapshot(home, snapshot)
    (section,) = sections([{"study": "early"}], home)
    assert "No complete trial yet" in section.html and figure_ids(section.html) == []
    assert "<script>" not in section.html
    assert "trial 0: the run failed: CUDA out of memory" in section.html
    assert '<th>RUNNING</th><td class="num">5</td>' in section.html


def test_a_snapshot_of_another_study_under_the_same_file_name_is_not_shown(home, study):
    write_snapshot(home, snapshot_of(study, "lr-search"))
    (section,) = sections([{"study": "lr search"}], home)  # kernel tune's file name for it: lr-search.json
    assert "is of study &#x27;lr-search&#x27;, not &#x27;lr search&#x27;" in section.html


def test_text_from_the_snapshot_cannot_inject_markup(home):
    import optuna

    snapshot = snapshot_of(quadratic_study(4), "inject", workflow="<img src=x onerror=alert(1)>")
    name = "</script><script>alert(1)</script>"
    text = optuna.distributions.distribution_to_json(optuna.distributions.FloatDistribution(0, 1))
    for trial in snapshot["trials"]:
        trial["params"][name], trial["distributions"][name] = 0.5, text
    snapshot["best"]["params"][name] = 0.5
    write_snapshot(home, snapshot)
    (section,) = sections([{"study": "inject"}], home)
    assert len(figure_ids(section.html)) == 4
    assert "<img src=x" not in section.html and "<script>alert(1)" not in section.html


# -- the dashboard asks often --------------------------------------------------------------------
def test_an_unchanged_snapshot_is_not_drawn_again_and_a_rewritten_one_is(home):
    study = quadratic_study(8)
    path = write_snapshot(home, snapshot_of(study, "again"))
    first = sections([{"study": "again"}], home)
    start = time.perf_counter()
    second = sections([{"study": "again"}], home)
    assert time.perf_counter() - start < 0.5  # a stat and the kept drawing (drawing takes about a second)
    assert second == first
    import optuna

    study.add_trial(optuna.trial.create_trial(value=2.0, params=study.trials[0].params,
                                              distributions=study.trials[0].distributions))
    path.write_text(json.dumps(snapshot_of(study, "again")))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a rewrite within the clock's step
    (third,) = sections([{"study": "again"}], home)
    assert '<th>COMPLETE</th><td class="num">7</td>' in third.html and "<th>trial</th><td>8</td>" in third.html


# -- a whole report ------------------------------------------------------------------------------
def write_trial_runs(workspace: Path, snapshot: dict) -> list[Path]:
    """The trials' run folders as ``kernel tune`` leaves them: run.json with ``study`` and
    ``trial``, one metrics line per epoch (the trial's intermediate values)."""
    folders = []
    for trial in snapshot["trials"]:
        folder = Path(workspace) / "runs" / trial["run"]
        folder.mkdir(parents=True)
        rows = [{"epoch": int(step), "valid/accuracy": value} for step, value in trial["intermediate"].items()]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        status = {"COMPLETE": "completed", "PRUNED": "pruned"}.get(trial["state"], "failed")
        (folder / "run.json").write_text(json.dumps({
            "id": trial["run"], "workflow": snapshot["workflow"], "model": "mlp", "use": "kernel.mlp",
            "status": status, "created": f"2026-12-04T11:00:{trial['number']:02d}Z", "fingerprint": "c3e87037cd98",
            "monitor": snapshot["monitor"], "mode": "max", "epochs": 2, "epochs_done": len(rows),
            "study": snapshot["study"], "trial": trial["number"], "params": {}, "pid": 999_999_999}))
        folders.append(folder)
    return folders


def test_a_report_page_holds_plotly_js_once(home, study):
    snapshot = snapshot_of(study, "paged")
    write_snapshot(home, snapshot)
    write_trial_runs(home, snapshot)
    proc = subprocess.run([sys.executable, "-m", "kernel.cli", "report", "--study", "paged", "-o", "report.html"],
                          cwd=home, env={**os.environ, "KERNEL_HOME": str(home)}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "report of 8 runs" in proc.stdout
    page = (home / "report.html").read_text()
    data = json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    given = data["plugin_sections"]
    assert given["warnings"] == []
    (section,) = given["sections"]
    assert section["plugin"] == "tuning" and section["title"] == "Tuning study paged"
    assert len(figure_ids(section["html"])) == 4
    # the page's own copy of plotly.js: the section's is left out of the file (the page has it)
    assert page.count(plotly_js()) == 1 and plotly_js() not in section["html"] and len(page) < 1.5 * len(plotly_js())
