"""`kernel dashboard` over raw HTTP: it serves only run-store files, stays read-only unless told,
and its stop button really interrupts a run's process. The server runs as the real command."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runstore_fixtures import DashboardProcess, append_epoch, metric_row, raw_request, write_run  # noqa: E402

from kernel import Section, hookimpl  # noqa: E402
from kernel.report.server import Dashboard, path_segments  # noqa: E402


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One read-only dashboard for the tests that only read (starting one costs a kernel start-up)."""
    workspace = tmp_path_factory.mktemp("workspace")
    root = workspace / "runs"
    write_run(root, model="mlp", quality=0.7, index=0)
    write_run(root, model="cnn", quality=0.9, index=1)
    with DashboardProcess(workspace) as d:
        yield root, d


@pytest.fixture
def store(shared):
    return shared[0]


@pytest.fixture
def dashboard(shared):
    return shared[1]


def run_id(store, model):
    return next(p.name for p in store.iterdir() if f"-{model}-" in p.name)


def test_binds_loopback_by_default_and_serves_the_page(dashboard):
    assert dashboard.host == "127.0.0.1" and "read-only" in dashboard.banner
    status, body = raw_request(dashboard.host, dashboard.port, "/")
    assert status == 200 and b'id="kernel-data"' in body and b"/assets/plotly.min.js" in body
    import urllib.request

    with urllib.request.urlopen(dashboard.url + "/") as resp:  # nothing from elsewhere, no framing
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    status, body = raw_request(dashboard.host, dashboard.port, "/assets/plotly.min.js")
    assert status == 200 and body.startswith(b"/**") and len(body) > 1_000_000


@pytest.mark.parametrize("target", [
    "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/etc/passwd", "//etc/passwd",
    "/assets/../../../../etc/passwd", "/assets/%2e%2e%2f%2e%2e%2fpyproject.toml", "/files/{run}/../run.json",
    "/files/{run}/%2e%2e/run.json", "/files/{run}/..%2f..%2f..%2fpyproject.toml", "/files/{run}/%2fetc%2fpasswd",
    "/files/{run}/..\\..\\run.json", "/files/..%2f..%2f..%2f/etc/passwd", "/files/{run}/samples/%00.png",
    "http://127.0.0.1/etc/passwd", "/files/%2fetc/passwd", "/files/index.sqlite/x", "/runs/{run}/run.json",
])
def test_paths_outside_the_run_store_get_404(dashboard, store, target):
    status, body = raw_request(dashboard.host, dashboard.port, target.format(run=run_id(store, "cnn")))
    assert status == 404
    assert b"root:" not in body and b"[project]" not in body


def test_artifacts_are_served_but_a_link_out_of_them_is_not(dashboard, store):
    run = run_id(store, "cnn")
    status, body = raw_request(dashboard.host, dashboard.port, f"/files/{run}/samples/0_input.png")
    assert status == 200 and body.startswith(b"\x89PNG")
    (store / run / "artifacts" / "samples" / "escape.png").symlink_to("/etc/passwd")
    status, _ = raw_request(dashboard.host, dashboard.port, f"/files/{run}/samples/escape.png")
    assert status == 404


def test_a_linked_artifacts_folder_or_run_folder_is_not_followed(workspace, tmp_path):
    outside = write_run(tmp_path / "elsewhere", model="secret")
    run = write_run(workspace / "runs", model="mlp", artifacts=False)
    (run / "artifacts").symlink_to(outside / "artifacts")
    (workspace / "runs" / outside.name).symlink_to(outside)
    d = Dashboard(workspace)
    assert d.artifact(run.name, ["samples", "0_input.png"]) is None
    assert d.artifact(outside.name, ["samples", "0_input.png"]) is None
    assert d.artifact(run.name, ["..", "run.json"]) is None
    assert [r.id for r in d.reader.scan()] == [run.name]  # the linked run is not listed either


def test_a_linked_html_sample_shows_nothing_from_outside_the_run(workspace, tmp_path):
    """A received run whose HTML sample is a link to a secret: neither the dashboard's state nor the
    static report (which inlines files) carries the secret."""
    from kernel.report.html import write_report
    from kernel.store import Run

    secret = tmp_path / "id_rsa"
    secret.write_text("SECRET-KEY-MATERIAL")
    run = write_run(workspace / "runs", model="mlp")
    samples = run / "artifacts" / "samples"
    entries = json.loads((samples / "samples.json").read_text())
    entries[0]["input"] = "0_input.html"
    (samples / "samples.json").write_text(json.dumps(entries))
    (samples / "0_input.html").symlink_to(secret)
    (samples / "0_target.png").unlink()
    (samples / "0_target.png").symlink_to(secret)
    body, _, _ = Dashboard(workspace).state()
    assert b"SECRET-KEY-MATERIAL" not in body
    out = tmp_path / "report.html"
    write_report([Run.open(run)], out)
    assert "SECRET-KEY-MATERIAL" not in out.read_text()

    # a linked artifacts folder leads out of the run as well: nothing of it is shown
    elsewhere = write_run(tmp_path / "elsewhere", model="cnn")
    (elsewhere / "artifacts" / "samples" / "0_input.html").write_text("SECRET-PAGE")
    entries = json.loads((elsewhere / "artifacts" / "samples" / "samples.json").read_text())
    entries[0]["input"] = "0_input.html"
    (elsewhere / "artifacts" / "samples" / "samples.json").write_text(json.dumps(entries))
    linked = write_run(workspace / "runs", model="cnn", index=1, artifacts=False)
    (linked / "artifacts").symlink_to(elsewhere / "artifacts")
    write_report([Run.open(linked)], out)
    assert "SECRET-PAGE" not in out.read_text()


def test_run_files_are_served_sandboxed(dashboard, store):
    """An artifact (an SVG with a script, an HTML sample) is data: served with a sandboxing policy, so
    it cannot act with the dashboard's origin and control token."""
    run = run_id(store, "cnn")
    from urllib.request import urlopen

    with urlopen(f"http://{dashboard.host}:{dashboard.port}/files/{run}/samples/0_input.png", timeout=10) as response:
        assert response.status == 200
        policy = response.headers.get("Content-Security-Policy", "")
        assert "sandbox" in policy and "default-src 'none'" in policy
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


def test_a_foreign_host_name_is_refused(dashboard):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the store."""
    status, _ = raw_request(dashboard.host, dashboard.port, "/api/state", headers={"Host": "evil.example"})
    assert status == 404


def test_stop_never_signals_the_holder_of_a_planted_lock_link(workspace, tmp_path):
    """A run folder's .lock linked to another program's lock file: that program holds a lock on it,
    but it is not the run's trainer, and gets no signal."""
    other = tmp_path / "daemon.lock"
    daemon = lock_holder_of_file(other)
    try:
        run = write_run(workspace / "runs", model="vit", status="running", epochs_done=2)
        (run / ".lock").symlink_to(other)
        status, payload = Dashboard(workspace).stop(run.name)
        assert status == 409 and "not being trained" in payload["error"]
        time.sleep(0.2)
        assert daemon.poll() is None
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()


def lock_holder_of_file(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", (
        f"import fcntl, os, time\nfd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("host", ["evil@127.0.0.1:{port}", "127.0.0.1:{port}@evil.example", "user:pw@localhost",
                                  "127.0.0.1:{port}/x", "127.0.0.1 :{port}"])
def test_a_host_header_with_userinfo_or_junk_is_a_400(dashboard, host):
    for method in ("GET", "POST"):
        status, _ = raw_request(dashboard.host, dashboard.port, "/api/state", method=method,
                                headers={"Host": host.format(port=dashboard.port)})
        assert status == 400, (host, method)
    assert raw_request(dashboard.host, dashboard.port, "/api/state")[0] == 200


def test_idle_connections_are_closed_and_do_not_hold_threads(workspace):
    """50 sockets that connect and say nothing: closed after the idle timeout, while the server still
    answers."""
    import socket
    import threading

    from kernel.report.server import make_server

    write_run(workspace / "runs")
    server = make_server(workspace, port=0, idle_timeout=1.0, max_connections=60)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    threads_before = threading.active_count()
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(50)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - threads_before <= 60
        assert raw_request(host, port, "/api/state")[0] == 200  # the server still answers meanwhile
        started = time.monotonic()
        for s in idle:
            assert s.recv(1) == b""  # closed by the server (a timeout here would raise)
        assert time.monotonic() - started < 5
        time.sleep(0.3)
        assert threading.active_count() <= threads_before + 1
        assert raw_request(host, port, "/api/state")[0] == 200
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()


def test_a_request_sent_a_byte_at_a_time_is_cut_at_the_timeout(workspace):
    """The idle timeout bounds the whole request line and headers, not each read: a client that
    dribbles a byte now and then cannot hold a connection (and a thread) for ever."""
    import socket
    import threading

    from kernel.report.server import make_server

    write_run(workspace / "runs")
    server = make_server(workspace, port=0, idle_timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        slow = socket.create_connection((host, port), timeout=10)
        started, closed = time.monotonic(), False
        for byte in b"GET /api/state HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 6:
                break
        if not closed:
            slow.settimeout(5)
            try:
                closed = slow.recv(1) == b""
            except OSError:
                closed = True
        assert closed and time.monotonic() - started < 6
        slow.close()
        assert raw_request(host, port, "/api/state")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_beyond_the_connection_limit_a_socket_is_closed_at_once(workspace):
    import socket
    import threading

    from kernel.report.server import make_server

    server = make_server(workspace, port=0, idle_timeout=5.0, max_connections=10)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(10)]
    try:
        time.sleep(0.5)  # all ten accepted, each holding a thread
        extra = socket.create_connection((host, port), timeout=10)
        idle.append(extra)
        started = time.monotonic()
        assert extra.recv(1) == b""  # refused a thread: closed at once, not after the 5 s idle timeout
        assert time.monotonic() - started < 2
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()


def test_state_follows_new_epochs_and_unchanged_state_is_a_304(dashboard, store):
    status, body = raw_request(dashboard.host, dashboard.port, "/api/state")
    state = json.loads(body)
    run = run_id(store, "mlp")
    assert status == 200 and state["curves"][run]["epoch"] == [1, 2, 3, 4, 5]
    import urllib.request

    with urllib.request.urlopen(dashboard.url + "/api/state") as resp:
        etag = resp.headers["ETag"]
    status, _ = raw_request(dashboard.host, dashboard.port, "/api/state", headers={"If-None-Match": etag})
    assert status == 304
    append_epoch(store / run, metric_row(6, 0.7))
    status, body = raw_request(dashboard.host, dashboard.port, "/api/state", headers={"If-None-Match": etag})
    assert status == 200 and json.loads(body)["curves"][run]["epoch"][-1] == 6


def test_read_only_refuses_control(dashboard, store):
    status, body = raw_request(dashboard.host, dashboard.port, f"/api/runs/{run_id(store, 'mlp')}/stop", method="POST")
    assert status == 403 and b"--allow-control" in body
    status, body = raw_request(dashboard.host, dashboard.port, "/")
    assert b'"token": null' in body  # the page shows no stop or resume button


def lock_holder(run_dir: Path, flag: Path) -> subprocess.Popen:
    """A stand-in for a trainer: a real process that holds the run's lock, as training does, and
    records the SIGINT it receives. It prints a line once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, sys, time\n"
        "from kernel.runlock import RunLock\n"
        f"lock = RunLock({str(run_dir)!r}).acquire()\n"
        "print('locked', flush=True)\n"
        "try:\n    time.sleep(60)\n"
        f"except KeyboardInterrupt:\n    pathlib.Path({str(flag)!r}).write_text('stopped')\n")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def page_token(d) -> str:
    page = raw_request(d.host, d.port, "/")[1].decode()
    return page.split('"token": "', 1)[1].split('"', 1)[0]


def test_stop_sends_sigint_to_the_process_holding_the_runs_lock(workspace, tmp_path):
    flag = tmp_path / "got-sigint"
    store = workspace / "runs"
    write_run(store, model="mlp", quality=0.7, index=0)
    run = write_run(store, model="vit", index=5, status="running", epochs_done=2)
    trainer = lock_holder(run, flag)
    try:
        with DashboardProcess(workspace, "--allow-control") as d:
            assert "stop and resume allowed" in d.banner
            target = f"/api/runs/{run.name}/stop"
            status, body = raw_request(d.host, d.port, target, method="POST")
            assert status == 403 and b"X-Kernel-Token" in body  # another site's page has no token
            token = page_token(d)
            status, body = raw_request(d.host, d.port, target, method="POST", headers={"X-Kernel-Token": token})
            assert status == 200 and str(trainer.pid).encode() in body, body
            assert trainer.wait(timeout=20) == 0 and flag.read_text() == "stopped"
            other = run_id(store, "mlp")  # completed: nothing to stop, nothing to resume
            status, body = raw_request(d.host, d.port, f"/api/runs/{other}/stop", method="POST",
                                       headers={"X-Kernel-Token": token})
            assert status == 409 and b"not being trained" in body and b"completed" in body
            status, body = raw_request(d.host, d.port, f"/api/runs/{other}/resume", method="POST",
                                       headers={"X-Kernel-Token": token})
            assert status == 409
    finally:
        if trainer.poll() is None:
            os.kill(trainer.pid, signal.SIGKILL)
            trainer.wait()
        trainer.stdout.close()


def test_stop_never_signals_the_process_a_planted_run_json_names(workspace):
    """run.json is data anyone can write: naming an unrelated process in it must not get it signalled."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        run = write_run(workspace / "runs", model="vit", status="running", epochs_done=2, pid=victim.pid)
        assert Dashboard(workspace).stop(run.name)[0] == 409  # in-process: no process holds the lock
        with DashboardProcess(workspace, "--allow-control") as d:
            status, body = raw_request(d.host, d.port, f"/api/runs/{run.name}/stop", method="POST",
                                       headers={"X-Kernel-Token": page_token(d)})
            assert status == 409 and b"not being trained" in body, body
        time.sleep(0.2)
        assert victim.poll() is None  # still sleeping: it got no signal
    finally:
        victim.kill()
        victim.wait()


def test_a_busy_port_is_a_one_line_error(dashboard, cli):
    result = cli("dashboard", "--port", str(dashboard.port))
    assert result.returncode == 2 and "in use" in result.stderr and "Traceback" not in result.stderr


def test_path_segments_rules():
    assert path_segments("/") == []
    assert path_segments("/files/a%20b/c.png?x=1") == ["files", "a b", "c.png"]
    for bad in ("/../x", "/a/./b", "/a//b", "/%2e%2e", "/a%2fb", "/a%5cb", "x", "/%ff%fe", "/~root"):
        assert path_segments(bad) is None, bad


def test_state_is_rebuilt_when_artifacts_arrive(workspace):
    """The confusion matrix and samples are written when a run ends: the dashboard must notice."""
    run = write_run(workspace / "runs", artifacts=False)
    d = Dashboard(workspace)
    _, etag, data = d.state()
    assert data["groups"][0]["dataset"]["confusion"] is None
    assert d.state()[1] == etag  # nothing changed: same state
    from runstore_fixtures import write_artifacts

    write_artifacts(run, 0.8)
    _, etag2, data = d.state()
    assert etag2 != etag and data["groups"][0]["dataset"]["confusion"]["run"] == run.name
    assert data["groups"][0]["dataset"]["samples"][0]["input"] == f"/files/{run.name}/samples/0_input.png"


def test_other_methods_are_not_allowed(dashboard):
    for method in ("PUT", "DELETE", "PATCH"):
        status, _ = raw_request(dashboard.host, dashboard.port, "/", method=method)
        assert status == 405, method
    status, body = raw_request(dashboard.host, dashboard.port, "/api/state", method="HEAD")
    assert status == 200 and body == b""


def test_the_page_runs_only_scripts_holding_its_responses_nonce(dashboard):
    import re
    import urllib.request

    seen = []
    for _ in range(2):
        with urllib.request.urlopen(dashboard.url + "/") as resp:
            policy, body = resp.headers["Content-Security-Policy"], resp.read().decode()
        script_src = next(p.strip() for p in policy.split(";") if p.strip().startswith("script-src"))
        nonce = re.fullmatch(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{20,})'", script_src).group(1)
        assert f'<script nonce="{nonce}">KernelPage.start(' in body  # the page's start-up holds it
        seen.append(nonce)
    assert seen[0] != seen[1]  # new for every response


class CountingSections:
    """A plugin registered in this process whose section says ``self.text``; counts the calls."""

    def __init__(self):
        self.text, self.calls = "first", 0

    @hookimpl
    def kernel_report_sections(self, runs, workspace):
        self.calls += 1
        return [Section("Counted", f"<p>{self.text}</p>")]


def test_plugins_are_asked_at_most_once_per_interval_and_a_change_is_a_new_state(workspace):
    from kernel.catalog import Catalog
    from kernel.plugins import PluginInfo, load_plugins

    plugins = load_plugins()
    counting = CountingSections()
    plugins.manager.register(counting, name="counting")
    plugins.infos["counting"] = PluginInfo("counting", "ktest-counting")
    write_run(workspace / "runs")
    d = Dashboard(workspace, interval_ms=100, catalog=Catalog(plugins))  # asked at most once a second
    _, etag, data = d.state()
    for _ in range(5):  # polls of several pages
        assert d.state()[1] == etag
    assert counting.calls == 1 and data["plugin_sections"]["sections"][0]["html"] == "<p>first</p>"
    time.sleep(1.05)
    assert d.state()[1] == etag and counting.calls == 2  # asked again: the same answer, the same state
    counting.text = "second"
    time.sleep(1.05)
    _, changed, data = d.state()
    assert changed != etag and data["plugin_sections"]["sections"][0]["html"] == "<p>second</p>"
