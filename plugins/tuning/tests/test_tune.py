"""`kernel tune` end to end, with the real command, Optuna and the run store: trials are runs, the
best values reproduce exactly, pruned runs stop cleanly, studies continue, mistakes change nothing."""
from __future__ import annotations

import json

import pytest

from tuning_helpers import TINY, kernel, runs_of, write


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty workspace (KERNEL_HOME) for the real command and in-process calls."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("KERNEL_HOME", str(folder))
    monkeypatch.chdir(folder)
    return folder


def study_of(home, name="tiny"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'studies' / 'studies.sqlite3'}")


@pytest.mark.slow
def test_tune_prints_the_best_trial_and_its_overrides_reproduce_its_score_exactly(home):
    write(home)
    tuned = kernel("tune", "tiny.toml", home=home)
    assert tuned.returncode == 0, tuned.stderr
    assert "best trial:" in tuned.stdout and "top trials by valid/accuracy" in tuned.stdout
    study = study_of(home)
    best = study.best_trial
    overrides = home / "studies" / "tiny.best.toml"
    assert f"reproduce: kernel run tiny.toml --set-file {overrides}" in tuned.stdout
    assert f"or: kernel run tiny.toml --set trainer.optimizer.lr={best.params['trainer.optimizer.lr']!r}" in tuned.stdout
    text = overrides.read_text()
    assert f'"trainer.optimizer.lr" = {best.params["trainer.optimizer.lr"]!r}' in text

    trial_run = next(r for r in runs_of(home) if r["id"] == best.user_attrs["run"])
    again = kernel("run", "tiny.toml", "--set-file", overrides, "--quiet", "--json", home=home)
    assert again.returncode == 0, again.stderr
    reproduced = json.loads(again.stdout)["runs"][0]
    # the same sampled value, seed and data: the very same score, and the same weights' metrics each epoch
    assert reproduced["best"]["valid/accuracy"] == trial_run["best"]["valid/accuracy"] == best.value
    assert reproduced["final"] == trial_run["final"]


@pytest.mark.slow
def test_each_trial_is_a_run_of_the_study_and_pruned_runs_keep_their_checkpoint(home):
    assert kernel("tune", write(home), "--trials", "8", "--quiet", home=home).returncode == 0
    study = study_of(home)
    runs = {r["id"]: r for r in runs_of(home)}
    trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(trials) == 8 and len(runs) == 8
    for t in trials:
        run = runs[t.user_attrs["run"]]
        assert (run["study"], run["trial"]) == ("tiny", t.number)
        assert run["sampled"] == {"trainer.optimizer.lr": t.params["trainer.optimizer.lr"]}
        assert run["status"] == {"COMPLETE": "completed", "PRUNED": "pruned"}[t.state.name]
    pruned = [runs[t.user_attrs["run"]] for t in trials if t.state.name == "PRUNED"]
    assert pruned, "the median pruner with two startup trials prunes some of eight trials over three decades"
    for run in pruned:
        assert run["epochs_done"] < 3 and "pruned by the study's median pruner" in run["reason"]
        folder = home / "runs" / run["id"]
        assert (folder / "checkpoints" / "last.pt").is_file()
        assert len((folder / "metrics.jsonl").read_text().splitlines()) == run["epochs_done"]

    listed = kernel("runs", "--study", "tiny", "--json", home=home)
    assert sorted(r["id"] for r in json.loads(listed.stdout)) == sorted(runs)
    pruned_only = kernel("runs", "--study", "tiny", "--status", "pruned", "--json", home=home)
    assert sorted(r["id"] for r in json.loads(pruned_only.stdout)) == sorted(r["id"] for r in pruned)
    none = kernel("runs", "--study", "other", "--json", home=home)
    assert json.loads(none.stdout) == []


@pytest.mark.slow
def test_running_the_same_command_again_continues_the_study(home):
    path = write(home)
    assert kernel("tune", path, "--trials", "3", "--quiet", home=home).returncode == 0
    assert kernel("tune", path, "--trials", "5", "--quiet", home=home).returncode == 0
    numbers = sorted(t.number for t in study_of(home).trials)
    assert numbers == [0, 1, 2, 3, 4]
    shown = kernel("tune", path, "--show", "--json", home=home)
    assert json.loads(shown.stdout)["trials"]["finished"] == 5


BAD = [
    ('tuning.space={"trainer.epochz"={int=[1,3]}}', 'tuning.space."trainer.epochz": unknown parameter'),
    ('tuning.space={"trainer.optimizer.lr"={float=[0.1,0.01]}}', "the range [0.1, 0.01] is reversed"),
    ('tuning.space={"trainer.optimizer.lr"={float=[0.0,0.1],log=true}}', "log = true needs a positive range"),
    ('tuning.space={"models[0].use"={choice=["kernel.mlp","kernel.mpl"]}}', "unknown model 'kernel.mpl'"),
    ('tuning.storage="sqlite:"', "tuning.storage:"),
    ('tuning.storage="postgresql://kernel@127.0.0.1:1/none"', "cannot open the study storage"),
    ('tuning.direction="minimize"', "tuning.direction: 'minimize' contradicts the monitor valid/accuracy"),
    ('tuning.monitor="valid/acc"', "tuning.monitor: 'valid/acc' is not measured (did you mean 'valid/accuracy'"),
    # values every trial would fail on: found by the checks a run makes first, before any trial
    ('tuning.space={"trainer.batch_size"={choice=[16,1000]}}', "1000: trainer.batch_size = 1000 is larger than"),
    ('trainer.optimizer="sgd"', 'tuning.space."trainer.optimizer.lr": --set trainer.optimizer.lr'),
]


@pytest.mark.parametrize("setting,message", BAD, ids=[b[0].split("=")[0] + str(i) for i, b in enumerate(BAD)])
def test_a_bad_tuning_setting_exits_2_names_it_and_writes_nothing(home, setting, message):
    proc = kernel("tune", write(home), "--set", setting, home=home)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
    assert sorted(p.name for p in home.iterdir()) == ["tiny.toml"]  # no runs/, no studies/


def test_bad_options_exit_2(home):
    path = write(home)
    for args, message in ((["--trials", "0"], "--trials must be above 0"), (["--workers", "0"], "--workers must be 1"),
                          (["--storage", "mysql//x"], "--storage")):
        proc = kernel("tune", path, *args, home=home)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    plain = write(home, TINY.split("[tuning]")[0], "plain.toml")
    proc = kernel("tune", plain, home=home)
    assert proc.returncode == 2 and "has no [tuning] table" in proc.stderr
    assert sorted(p.name for p in home.iterdir()) == ["plain.toml", "tiny.toml"]


def test_show_prints_the_space_and_settings_and_creates_nothing(home):
    proc = kernel("tune", write(home), "--show", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "trainer.optimizer.lr  float in [0.001, 1.0], log" in proc.stdout
    assert "has no trials yet" in proc.stdout
    assert not (home / "studies").exists() and not (home / "runs").exists()


def test_kernel_run_trains_a_workflow_with_a_tuning_table_as_written(home):
    proc = kernel("run", write(home), "--quiet", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    run = runs_of(home)[0]
    assert run["spec"]["tuning"]["trials"] == 6 and "study" not in run


@pytest.mark.slow
def test_a_conditional_space_over_a_choice_of_model_from_python(home):
    import kernel as K

    text = TINY.split("[[models]]")[0] + TINY.split("hidden = 16\n")[1].split("[tuning]")[0] + """
[[models]]
use = "kernel.mlp"

[tuning]
trials = 4
sampler = "random"
pruner = "none"

[tuning.space]
"models[0].use" = { choice = ["kernel.mlp", "kernel.linear"] }
"models[0].params.hidden" = { int = [4, 32], step = 4, when = { "models[0].use" = "kernel.mlp" } }
"""
    study = K.Workflow.from_file(write(home, text, "choice.toml")).tune(trials=4)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    runs = {r["id"]: r for r in runs_of(home)}
    for t in study.trials:
        run = runs[t.user_attrs["run"]]
        assert run["use"] == t.params["models[0].use"]
        assert ("models[0].params.hidden" in t.params) == (run["use"] == "kernel.mlp")
        if run["use"] == "kernel.mlp":
            assert run["params"]["hidden"] == t.params["models[0].params.hidden"]
    assert {t.params["models[0].use"] for t in study.trials} == {"kernel.mlp", "kernel.linear"}


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "qmc"])
def test_every_named_sampler_runs_a_study(home, sampler):
    import kernel as K

    wf = K.Workflow.from_file(write(home)).with_overrides(
        {"tuning.sampler": sampler, "trainer.epochs": 1, "tuning.pruner": "none",
         "tuning.space": {"trainer.optimizer.lr": {"float": [1e-3, 1.0], "log": True},
                          "models[0].hidden": {"int": [4, 16]}}})
    study = wf.tune(trials=2, study=f"s-{sampler}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert type(study.sampler).__name__.lower().startswith(sampler)


@pytest.mark.slow
def test_ctrl_c_stops_the_study_and_the_trial_names_its_resumable_run(home):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    write(home)
    command = [str(Path(sys.executable).with_name("kernel")), "tune", "tiny.toml", "--quiet",
               "--set", "trainer.epochs=500", "--set", "dataset.num_samples=2000"]
    proc = subprocess.Popen(command, cwd=home, env={**os.environ, "KERNEL_HOME": str(home)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(r["status"] == "running" and r.get("epochs_done", 0) >= 1 for r in runs_of(home)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "`kernel tune tiny.toml` continues study 'tiny'" in err and "kernel resume" in err
    (trial,) = study_of(home).trials
    (run,) = runs_of(home)
    assert trial.state.name == "FAIL" and trial.user_attrs["run"] == run["id"]
    assert run["status"] == "interrupted" and (run["study"], run["trial"]) == ("tiny", 0)
