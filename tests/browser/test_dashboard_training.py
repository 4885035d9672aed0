"""The dashboard follows a real training (`kernel run examples/synthetic.toml`) while the test watches,
stops it with its stop button and continues it with its resume button; then the report of the same
runs opens offline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runstore_fixtures import DashboardProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EPOCHS = 6
SLOW = 1.5
# [run id, epochs drawn] of the first model's validation curve (mlp: the first model trains first)
CURVE = ("() => { const t = (document.getElementById('curves').data || []).find(t => t.meta.role === 'metric'); "
         "return t ? [t.meta.run, t.x.length] : null; }")


def test_dashboard_follows_stops_and_resumes_a_real_training(open_page, workspace, tmp_path, cli, monkeypatch):
    # each epoch lasts at least SLOW seconds (tests/browser/slow_epochs.py), in the training and in the
    # resume the dashboard starts: the run is still training when the test clicks stop
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    # the run file names the test's callback: the resumes (the dashboard's and ours) may import it
    monkeypatch.setenv("KERNEL_ALLOW_IMPORTS", "slow_epochs")
    with DashboardProcess(workspace, "--interval", "0.3", "--allow-control") as d:
        w = open_page(allowed_origin=d.url)
        w.page.goto(d.url + "/")  # an empty store first: the page waits for runs
        w.page.wait_for_selector("#summary:has-text('no runs in the store yet')")
        training = subprocess.Popen([sys.executable, "-m", "kernel.cli", "run", str(ROOT / "examples" / "synthetic.toml"),
                                     "--set", f"trainer.epochs={EPOCHS}",
                                     "--set", f'callbacks=[{{use = "slow_epochs:SlowEpochs", seconds = {SLOW}}}]',
                                     "--quiet"], cwd=workspace,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            w.page.wait_for_function(f"() => {{ const c = ({CURVE})(); return c && c[1] >= 1; }}", timeout=120_000)
            run_id, seen = w.page.evaluate(CURVE)
            row = f"#runs-table tr[data-run='{run_id}']"
            assert w.page.inner_text(f"{row} td[data-key='status']") == "running"
            # a new epoch appears while we watch, without reloading the page
            # (no screenshot here: with the training on both cores, chromium's frame for it once took over 30 s in CI)
            w.page.wait_for_function(f"n => {{ const c = ({CURVE})(); return c && c[1] > n; }}", arg=seen, timeout=120_000)
            # stop: SIGINT to the training process; the trainer ends the run as interrupted after its batch
            w.page.click(f"{row} button.stop")
            w.page.wait_for_selector(f"{row} .status-interrupted", timeout=60_000)
            stopped_at = w.page.evaluate(CURVE)[1]
            assert stopped_at < EPOCHS
            # resume: `kernel resume RUN` in the background, which finishes the run's epochs
            w.page.click(f"{row} button.resume")
            w.page.wait_for_selector(f"{row} .status-completed", timeout=240_000)
            assert w.page.evaluate(CURVE) == [run_id, EPOCHS]
            # the stop ended the whole `kernel run` (130, naming what can go on), or, where it went on
            # with its next model, it exits 1 for its interrupted run (0 when the resume won the race)
            out, err = training.communicate(timeout=300)
            assert training.returncode in (0, 1, 130) and "Traceback" not in err, err
        finally:
            if training.poll() is None:
                training.kill()
                training.communicate()
        for run_dir in sorted((workspace / "runs").glob("*/run.json")):  # a model the stop left unstarted
            if json.loads(run_dir.read_text())["status"] == "queued":
                resumed = cli("resume", run_dir.parent.name, "--quiet")
                assert resumed.returncode == 0, resumed.stderr
        w.page.wait_for_function("() => document.querySelectorAll('#runs-table .status-completed').length === 2",
                                 timeout=30_000)
        w.page.screenshot(path=str(tmp_path / "dashboard-trained.png"), full_page=True)
        assert w.errors == [] and w.blocked == []
    # the report of the same runs, opened offline: one curve per run
    assert cli("report", "-o", "report.html").returncode == 0
    r = open_page()
    r.page.goto((workspace / "report.html").as_uri())
    r.page.wait_for_selector("#samples .sample img")
    assert r.page.evaluate("document.getElementById('curves').data.filter(t => t.meta.role === 'metric').length") == 2
    r.page.screenshot(path=str(tmp_path / "report-trained.png"), full_page=True)
    assert r.errors == [] and r.blocked == []
