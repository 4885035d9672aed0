"""Several workers on one study, and workers that die: real `kernel tune` processes, real databases.

- PostgreSQL (a real server, started by the ``postgres_server`` fixture): three "machines" (each its
  own workspace) join one study through ``--storage postgresql://...``; one is killed (SIGKILL) in
  the middle of a trial, the two others finish the study.
- SQLite in the workspace (the default storage): a worker killed mid-trial, then ``--workers 2`` on
  the same study, with ``retries = 1`` (the dead worker's trial is tried again) and ``retries = 0``
  (it stays failed, and the study still ends with the requested number of finished trials).

A trial whose worker died must not stay RUNNING: the survivors fail it through Optuna's heartbeat
(``heartbeat = 2`` here, so it is stale after 4 s) and retry it as configured.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

# RetryFailedTrialCallback is RetryHeartbeatStaleTrialCallback since Optuna 4.9
Retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback

pytestmark = pytest.mark.slow

TRIALS = 6
LR = "trainer.optimizer.lr"
SPACE_KEYS = {LR}

# Long enough (about half a second of training per trial) to be killed in the middle of a trial; the
# learning rates stay where SGD does not diverge, so every trial's run completes or is pruned.
WORKFLOW = """\
name = "tiny"
seed = 0
[dataset]
use = "kernel.synthetic"
num_samples = 1500
shape = [8]
num_classes = 3
[[models]]
use = "kernel.mlp"
hidden = 16
[trainer]
epochs = 20
batch_size = 32
optimizer = {{ use = "torch.optim.SGD", lr = 0.01 }}
metrics = ["kernel.accuracy"]
[tuning]
trials = {trials}
heartbeat = 2
retries = {retries}
space = {{ "{lr}" = {{ float = [1e-3, 0.1], log = true }} }}
"""


# -- helpers ---------------------------------------------------------------------------------------
class Worker:
    """One ``kernel tune`` process in a session of its own (so that killing it kills all it started),
    its output in files (no pipe to fill)."""

    def __init__(self, name: str, args: list, home: Path, logs: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.name, self.home = name, home
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        env = {**os.environ, "KERNEL_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "tune", *map(str, args)],
                                         cwd=home, env=env, stdout=out, stderr=err, start_new_session=True)
        self.args = args

    def output(self) -> str:
        text = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return (f"--- {self.name}: kernel tune {' '.join(map(str, self.args))} (KERNEL_HOME={self.home}), "
                f"exit {self.proc.returncode}\n--- stdout\n{text(self.out)[-4000:]}\n--- stderr\n{text(self.err)[-8000:]}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not finish within {timeout:.0f} s\n{self.output()}")

    def kill(self):
        """SIGKILL the worker and everything it started (a machine that dies)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def read_runs(homes) -> list[dict]:
    runs = []
    for home in homes:
        for path in sorted((Path(home) / "runs").glob("*/run.json")):
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):  # being written: the next look sees it
                continue
            runs.append({**info, "_dir": path.parent, "_home": Path(home)})
    return runs


def wait_mid_trial(worker: Worker, study: str, timeout: float = 90) -> dict:
    """The run.json of the trial ``worker`` is training right now (status running, its pid one of the
    worker's processes), as soon as there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in read_runs([worker.home]):
            if info.get("status") != "running" or info.get("study") != study:
                continue
            try:
                if os.getpgid(int(info.get("pid"))) == worker.proc.pid:
                    return info
            except (ProcessLookupError, TypeError, ValueError):
                continue
        if worker.proc.poll() is not None:
            pytest.fail(f"{worker.name} ended before it was seen training a trial\n{worker.output()}")
        time.sleep(0.05)
    worker.kill()
    pytest.fail(f"{worker.name} was not seen training a trial within {timeout:.0f} s\n{worker.output()}")


def retried_number(trial):
    """The number of the failed trial that ``trial`` retries (None: it is no retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return Retry.retried_trial_number(trial)


def optuna_url(url: str) -> str:
    """The URL for this test's own look at the study: SQLAlchemy 2.1 reads a plain postgresql:// with
    psycopg 3, 2.0 with psycopg2; name the driver that is installed (the workers get the URL as is)."""
    import importlib.util

    if url.startswith("postgresql://") and not importlib.util.find_spec("psycopg") \
            and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def is_surplus(trial) -> bool:
    return "kernel:surplus" in trial.system_attrs or "kernel:surplus" in trial.user_attrs


def check_study(url: str, study: str, homes, killed: dict, retries: int, workers=()) -> None:
    """The study after its workers ended: exactly TRIALS finished trials, unique numbers, nothing
    RUNNING, the killed worker's trial FAIL (and retried once when retries >= 1), every finished
    trial's run in one of the workspaces and pointing back to its trial."""
    logs = "\n".join(w.output() for w in workers)
    trials = optuna.load_study(study_name=study, storage=optuna_url(url)).get_trials(deepcopy=False)
    table = "\n".join(f"  #{t.number} {t.state.name} params={t.params} user={t.user_attrs} system={t.system_attrs}"
                      for t in trials)
    where = f"\nstudy {study!r} in {url}:\n{table}\n{logs}"

    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), f"trial numbers repeat{where}"
    assert not [t for t in trials if t.state == TrialState.RUNNING], f"a trial is left RUNNING{where}"
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == TRIALS, f"{len(finished)} finished trials, not {TRIALS}{where}"

    by_number = {t.number: t for t in trials}
    dead = by_number.get(killed["trial"])
    assert dead is not None, f"no trial #{killed['trial']} (the killed worker's){where}"
    assert dead.state == TrialState.FAIL, f"the killed worker's trial #{dead.number} is {dead.state.name}{where}"
    retried = [t for t in trials if retried_number(t) == dead.number]
    if retries:
        assert len(retried) == 1, f"trial #{dead.number} was retried {len(retried)} times, not once{where}"
        assert retried[0] in finished, f"its retry #{retried[0].number} did not finish{where}"
        assert retried[0].params == dead.params, f"the retry did not reuse the failed trial's values{where}"
    else:
        assert not retried, f"trial #{dead.number} was retried although retries = 0{where}"
    # Other failures can only be surplus trials of a race for the last place: no run behind them.
    for t in trials:
        if t.state == TrialState.FAIL and t.number != dead.number:
            assert is_surplus(t) and "run" not in t.user_attrs, f"trial #{t.number} failed{where}"
    assert not [t for t in trials if t.state == TrialState.WAITING], f"a trial is left WAITING{where}"

    runs = [r for r in read_runs(homes) if r.get("study") == study]
    for t in finished:
        run_id = t.user_attrs.get("run")
        assert run_id, f"trial #{t.number} has no user attribute 'run'{where}"
        found = [r for r in runs if r["_dir"].name == run_id]
        assert len(found) == 1, f"trial #{t.number}'s run {run_id!r} is in {len(found)} workspaces{where}"
        info = found[0]
        assert info.get("id", run_id) == run_id
        assert info["trial"] == t.number, f"run {run_id} says trial {info['trial']}, not {t.number}{where}"
        assert set(info["sampled"]) == SPACE_KEYS, f"run {run_id} sampled {info['sampled']}{where}"
        if LR in t.params:
            assert info["sampled"][LR] == pytest.approx(t.params[LR])
        wanted = "completed" if t.state == TrialState.COMPLETE else "pruned"
        assert info["status"] == wanted, f"run {run_id} of a {t.state.name} trial is {info['status']}{where}"
    # one run per trial: the killed one, and one for each finished trial (none for surplus trials)
    numbers_of_runs = sorted(r["trial"] for r in runs)
    assert numbers_of_runs == sorted([dead.number] + [t.number for t in finished]), \
        f"runs of the study: {[(r['_dir'].name, r['trial'], r['status']) for r in runs]}{where}"


# -- PostgreSQL: several machines -----------------------------------------------------------------
@pytest.mark.timeout(240)
def test_postgresql_two_workers_and_one_killed(postgres_url, tmp_path):
    study = f"pg-{uuid.uuid4().hex[:8]}"
    wf = tmp_path / "tiny.toml"
    wf.write_text(WORKFLOW.format(trials=TRIALS, retries=1, lr=LR))
    logs = tmp_path / "logs"
    logs.mkdir()
    args = [wf, "--study", study, "--storage", postgres_url, "--quiet"]
    machines = {name: tmp_path / name for name in ("victim", "a", "b")}  # a workspace each

    victim = Worker("victim", args, machines["victim"], logs)
    survivors = []
    try:
        killed = wait_mid_trial(victim, study)
        victim.kill()  # a machine lost in the middle of a trial; two others join the study
        survivors = [Worker(name, args, machines[name], logs) for name in ("a", "b")]
        for worker in survivors:
            assert worker.wait(timeout=180) == 0, worker.output()
    finally:
        for worker in [victim, *survivors]:
            worker.kill()
    check_study(postgres_url, study, machines.values(), killed, retries=1, workers=[victim, *survivors])


# -- SQLite in the workspace: one machine ----------------------------------------------------------
@pytest.mark.timeout(240)
@pytest.mark.parametrize("retries", [1, 0])
def test_killed_worker_sqlite(retries, tmp_path):
    home = tmp_path / "workspace"
    wf = tmp_path / "tiny.toml"
    wf.write_text(WORKFLOW.format(trials=TRIALS, retries=retries, lr=LR))
    logs = tmp_path / "logs"
    logs.mkdir()
    args = [wf, "--quiet"]  # the study "tiny" in $KERNEL_HOME/studies/studies.sqlite3

    victim = Worker("victim", args, home, logs)
    rest = None
    try:
        killed = wait_mid_trial(victim, "tiny")
        victim.kill()
        rest = Worker("workers", [*args, "--workers", "2"], home, logs)  # the same command, continued
        assert rest.wait(timeout=180) == 0, rest.output()
    finally:
        for worker in filter(None, [victim, rest]):
            worker.kill()
    url = f"sqlite:///{home / 'studies' / 'studies.sqlite3'}"
    assert (home / "studies" / "studies.sqlite3").exists(), rest.output()
    check_study(url, "tiny", [home], killed, retries=retries, workers=[victim, rest])

    # the runs are listed by study, the killed one no longer "running"
    listed = subprocess.run([sys.executable, "-m", "kernel.cli", "runs", "--study", "tiny", "--json"], cwd=home,
                            env={**os.environ, "KERNEL_HOME": str(home)}, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    rows = rows.get("runs", rows) if isinstance(rows, dict) else rows
    ids = {row["id"]: row for row in rows}
    on_disk = {r["_dir"].name for r in read_runs([home]) if r.get("study") == "tiny"}
    assert set(ids) == on_disk, listed.stdout
    assert ids[killed["_dir"].name]["status"] != "running", ids[killed["_dir"].name]
