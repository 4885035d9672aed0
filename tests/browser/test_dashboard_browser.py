"""The live dashboard (the real `kernel dashboard`) in Chromium, while a run is being written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from runstore_fixtures import DashboardProcess, append_epoch, metric_row, write_run

pytestmark = pytest.mark.browser


def epochs_of(page, run_id):
    return page.evaluate("id => (document.getElementById('curves').data.find(t => t.meta.run === id && "
                         "t.meta.role === 'metric') || {x: []}).x.length", run_id)


def test_dashboard_shows_new_epochs_of_a_run_being_written(open_page, workspace, tmp_path):
    root = workspace / "runs"
    write_run(root, model="mlp", quality=0.7, index=0, tags=["baseline"])
    # "running" with a live process (this test) on this host: the dashboard shows it as running
    live = write_run(root, model="cnn", quality=0.9, index=1, epochs=6, epochs_done=2, status="running",
                     pid=os.getpid(), tags=["candidate"])
    write_run(root, workflow="speech", model="rnn", index=2, fingerprint="other-data")
    with DashboardProcess(workspace, "--interval", "0.5") as d:
        w = open_page(allowed_origin=d.url)
        w.page.goto(d.url + "/")
        w.page.wait_for_selector("#curves .main-svg")
        # grouped by dataset: the newest group (speech) first, the digits group a choice away
        groups = w.page.eval_on_selector_all("#group option", "os => os.map(o => o.textContent)")
        assert len(groups) == 2 and "speech" in groups[0] and "digits (2 runs)" in groups[1]
        w.page.select_option("#group", index=1)
        w.page.wait_for_function("id => document.getElementById('curves').data.some(t => t.meta.run === id)", arg=live.name)
        assert epochs_of(w.page, live.name) == 2
        row = w.page.locator(f"#runs-table tr[data-run='{live.name}']")
        assert row.locator("td[data-key='status']").inner_text() == "running"
        assert row.locator("td[data-key='epochs']").inner_text() == "2 / 6"
        assert w.page.locator("button.stop").count() == 0  # read-only: no control
        # the trainer writes: first half a line (not yet flushed whole), then the whole line
        with open(live / "metrics.jsonl", "a") as f:
            f.write('{"epoch": 3, "step": 30, "valid/acc')
            f.flush()
        time.sleep(1.5)  # polls see the cut line
        assert epochs_of(w.page, live.name) == 2
        with open(live / "metrics.jsonl", "a") as f:
            f.write('uracy": 0.71}\n')
        append_epoch(live, metric_row(4, 0.9))
        w.page.wait_for_function("id => (document.getElementById('curves').data.find(t => t.meta.run === id && "
                                 "t.meta.role === 'metric') || {x: []}).x.length === 4", arg=live.name, timeout=15000)
        assert w.page.url == d.url + "/"  # no reload: the page polled
        assert row.locator("td[data-key='epochs']").inner_text() == "4 / 6"  # the table follows too
        # a run that starts now appears too; a directory created before its run.json does not break the page
        (root / "digits-vit-20261122-090000-0abc").mkdir()
        write_run(root, model="vit", quality=0.5, index=7, epochs_done=1, status="running", pid=os.getpid())
        w.page.wait_for_selector("#runs-table tr[data-run^='digits-vit-']", timeout=15000)
        # filter by tag
        w.page.select_option("#filter", "tag:candidate")
        w.page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 1")
        w.page.select_option("#filter", "all")
        w.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert w.errors == [] and w.blocked == []


def test_dashboard_refuses_paths_out_of_the_store(open_page, workspace, tmp_path):
    write_run(workspace / "runs", model="mlp")
    with DashboardProcess(workspace) as d:
        w = open_page(allowed_origin=d.url)
        # a browser normalises /../../etc/passwd to /etc/passwd; encoded dots reach the server as sent
        for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/files/x/%2e%2e/%2e%2e/etc/passwd"):
            response = w.page.goto(d.url + path)
            assert response.status == 404, path
            assert "root:" not in w.page.content()
        response = w.page.request.get(d.url + "/%2e%2e/%2e%2e/%2e%2e/etc/passwd")
        assert response.status == 404
        w.page.screenshot(path=str(tmp_path / "dashboard-404.png"))


def test_stop_button_only_with_allow_control_and_it_interrupts_the_run(open_page, workspace, tmp_path):
    flag = tmp_path / "got-sigint"
    run = write_run(workspace / "runs", model="cnn", epochs_done=1, status="running")
    # a stand-in trainer holds the run's lock, as training does: the stop button signals only its holder
    trainer = subprocess.Popen([sys.executable, "-c", (
        f"import pathlib, time\nfrom kernel.runlock import RunLock\nlock = RunLock({str(run)!r}).acquire()\n"
        "print('locked', flush=True)\ntry:\n    time.sleep(60)\n"
        f"except KeyboardInterrupt:\n    pathlib.Path({str(flag)!r}).write_text('stopped')\n")],
        stdout=subprocess.PIPE, text=True)
    assert trainer.stdout.readline().strip() == "locked"
    try:
        with DashboardProcess(workspace, "--allow-control") as d:
            w = open_page(allowed_origin=d.url)
            w.page.goto(d.url + "/")
            button = w.page.locator(f"#runs-table tr[data-run='{run.name}'] button.stop")
            button.wait_for()
            time.sleep(0.3)  # the stand-in trainer has installed its SIGINT handler
            button.click()
            w.page.wait_for_selector("#message:not([hidden])")
            assert "SIGINT" in w.page.inner_text("#message")
            assert trainer.wait(timeout=20) == 0 and flag.read_text() == "stopped"
            # its process is gone: the run reads as interrupted, and offers resume instead
            w.page.locator(f"#runs-table tr[data-run='{run.name}'] button.resume").wait_for(timeout=15000)
            w.page.screenshot(path=str(tmp_path / "dashboard-control.png"), full_page=True)
            assert w.errors == []
    finally:
        if trainer.poll() is None:
            os.kill(trainer.pid, signal.SIGKILL)
            trainer.wait()
