"""``kernel dashboard``: the report's page, live from the run store, on the standard library's HTTP server.

What it serves, and nothing else (anything else is 404):
- ``/`` the page, ``/assets/{app.js,style.css,plotly.min.js}`` its code (plotly.js from the wheel);
- ``/api/state`` the page's data as JSON (with an ETag: the page polls it, unchanged data costs a 304);
- ``/files/<run id>/<path>`` a file under that run's ``artifacts/`` (images, sounds, reports);
- with ``--allow-control`` only: ``POST /api/runs/<id>/stop`` (SIGINT to the process that holds the
  run's lock, :mod:`kernel.runlock`) and ``POST /api/runs/<id>/resume`` (spawns ``kernel resume <id>``),
  each needing the page's token.

Paths are checked segment by segment after percent-decoding (no ``..``, ``.``, empty segment,
backslash or NUL), then the file is resolved and must still lie inside the run's artifacts folder,
so neither ``/../../etc/passwd``, ``%2e%2e`` nor a symbolic link leads out of the store.

A connection idle for ``IDLE_TIMEOUT_S`` is closed, and at most ``MAX_CONNECTIONS`` are served at
once (one thread each): idle sockets cannot pile up threads. A ``Host`` header that is not a plain
``name[:port]`` (userinfo such as ``evil@127.0.0.1``, spaces, paths) is a 400.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

from .html import ASSETS, dashboard_html, dashboard_policy, plotly_js_path, plugin_sections
from .page import artifact_file, build_page, mime_type, to_json
from ..store import Run
from ..run_reader import open_run
from .runs import StoreReader

ASSET_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
               "plotly.min.js": "text/javascript; charset=utf-8"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Seconds a connection may stay silent (before its request, or between keep-alive requests).
IDLE_TIMEOUT_S = 15.0
#: Connections served at once; more are closed at once rather than given a thread each.
MAX_CONNECTIONS = 64
#: What a Host header may be: a name or IPv4 address, or an IPv6 address in brackets, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def path_segments(raw: str) -> list[str] | None:
    """The decoded segments of a request path, or None when the path could lead anywhere unexpected."""
    if not raw.startswith("/") or raw.startswith("//"):
        return None  # absolute-form URLs ("http://x/y") and protocol-relative paths are not ours
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if path == "/":
        return []
    out = []
    for part in path[1:].split("/"):
        try:
            seg = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if seg in ("", ".", "..") or any(c in seg for c in "/\\\x00") or seg.startswith("~"):
            return None
        out.append(seg)
    return out


class Dashboard:
    """The state shared by the server's threads: where the store is, and what the page may do."""

    def __init__(self, workspace: Path, allow_control: bool = False, metric: str | None = None,
                 interval_ms: int = 2000, bound_host: str = "127.0.0.1", catalog=None):
        self.workspace = Path(workspace)
        self.catalog = catalog  # whose plugins add sections (None: the process's catalog)
        self.root = self.workspace / "runs"
        self.reader = StoreReader(self.root)
        self.allow_control = allow_control
        self.token = secrets.token_urlsafe(24) if allow_control else None
        self.metric = metric
        self.interval_ms = interval_ms
        self.bound_host = bound_host
        self.resumes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._control_lock = threading.Lock()
        self._state = None
        self._sections = None  # (when the plugins were asked, their sections)

    def link(self, run: Run, relative: str) -> str | None:
        if artifact_file(run.dir, relative) is None:  # what /files would refuse gets no link
            return None
        return f"/files/{quote(run.id, safe='')}/" + "/".join(quote(p, safe="") for p in relative.split("/"))

    def state(self) -> tuple[bytes, str, dict]:
        """The page's data as JSON bytes, its ETag, and the data; built again only when a run's files or
        status, or a plugin's section, changed since the last call (a poll of an unchanged store costs
        a few stat calls)."""
        with self._lock:
            runs = self.reader.scan()
            sections = self.plugin_sections(runs)
            key = (self.reader.signature, sections["key"])
            if self._state is not None and self._state[0] == key:
                return self._state[1]
            data = build_page(runs, metric=self.metric, link=self.link, title="kernel dashboard", live=True)
            data["plugin_sections"] = sections
            body = to_json(data).encode()
            etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
            self._state = (key, (body, etag, data))
            return body, etag, data

    def plugin_sections(self, runs: list[Run]) -> dict:
        """The plugins' sections, asked at most once per poll interval (and a second), however many
        pages poll and however often the runs change; the answer is kept in between. Asked on
        time, not only when a run changes: a plugin's own files (a study's snapshot, written after
        its trial's run.json) change with no run file changing."""
        now = time.monotonic()
        if self._sections is not None and now - self._sections[0] < max(self.interval_ms / 1000, 1.0):
            return self._sections[1]
        sections = plugin_sections(runs, self.workspace, self.catalog)
        self._sections = (now, sections)
        return sections

    def artifact(self, run_id: str, rest: list[str]) -> Path | None:
        run_dir = self.root / run_id
        if not (run_dir / "run.json").is_file() or not rest:
            return None
        target = artifact_file(run_dir, "/".join(rest))
        return target if target is not None and mime_type(target.name) is not None else None

    # -- control ---------------------------------------------------------------------------------
    def stop(self, run_id: str) -> tuple[int, dict]:
        """SIGINT to the process that holds the run's lock, and to no other: the PID in run.json is
        only a claim (a planted or stale run.json could name any process), the lock is the OS's word."""
        from ..runlock import holder

        run = open_run(self.root / run_id)
        if run is None:
            return 404, {"error": f"no run {run_id}"}
        pid = holder(run.dir)
        if pid is None:
            return 409, {"error": f"run {run_id} is not being trained (no process holds its lock; it is {run.status})"}
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return 409, {"error": f"run {run_id} is not being trained (process {pid} has just ended)"}
        except PermissionError:
            return 403, {"error": f"not allowed to signal process {pid} of run {run_id}"}
        return 200, {"message": f"asked run {run_id} to stop (SIGINT to process {pid}); "
                                "it stops after the current batch and can be resumed"}

    def resume(self, run_id: str) -> tuple[int, dict]:
        run = open_run(self.root / run_id)
        if run is None:
            return 404, {"error": f"no run {run_id}"}
        if run.status not in ("interrupted", "failed"):
            return 409, {"error": f"run {run_id} is {run.status}; only interrupted or failed runs resume"}
        with self._control_lock:
            previous = self.resumes.get(run_id)
            if previous is not None and previous.poll() is None:
                return 409, {"error": f"run {run_id} is already being resumed (process {previous.pid})"}
            log = open(run.dir / "resume.log", "ab")  # why a resume failed, for the user to read
            try:
                proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "resume", run_id], cwd=self.workspace,
                                        env={**os.environ, "KERNEL_HOME": str(self.workspace)},
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            finally:
                log.close()
            self.resumes[run_id] = proc
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it ends
        return 202, {"message": f"resuming run {run_id} (`kernel resume {run_id}`, process {proc.pid}; "
                                f"output in {run.dir / 'resume.log'})"}


class Handler(BaseHTTPRequestHandler):
    server_version = "kernel-dashboard"
    dashboard: Dashboard  # set on the subclass made by make_server
    quiet = True
    timeout = IDLE_TIMEOUT_S  # socket timeout: a silent connection is closed (StreamRequestHandler)
    protocol_version = "HTTP/1.0"  # one request per connection: no keep-alive socket waits for more

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)

    # the socket timeout bounds each read; a client that sends a byte now and then must still send
    # its whole request line and headers within the timeout (DashboardServer watches the deadline)
    def setup(self):
        super().setup()
        watch = getattr(self.server, "expect_request", None)
        if watch is not None:
            watch(self.connection, self.timeout)

    def parse_request(self):
        ok = super().parse_request()  # reads the headers
        done = getattr(self.server, "request_read", None)
        if done is not None:
            done(self.connection)
        return ok

    # -- responses -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None, head: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: dict, head: bool = False):
        self._send(status, json.dumps(payload).encode(), "application/json", {"Cache-Control": "no-store"}, head)

    def _not_found(self, head: bool = False):
        self._send(404, b"not found\n", "text/plain; charset=utf-8", head=head)

    def _host_valid(self) -> bool:
        """A Host header, when given, is ``name[:port]``: no userinfo (``evil@127.0.0.1``), no path."""
        host = self.headers.get("Host")
        return host is None or _HOST.fullmatch(host.strip()) is not None

    def _host_ok(self) -> bool:
        """On a loopback address, only loopback names are accepted (no DNS rebinding to this server)."""
        if self.dashboard.bound_host not in LOOPBACK:
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
        return name in LOOPBACK

    def _bad_host(self, head: bool = False) -> bool:
        """Answer 400 to a malformed Host header; True when answered."""
        if self._host_valid():
            return False
        self._send(400, b"bad Host header\n", "text/plain; charset=utf-8", head=head)
        return True

    # -- methods ---------------------------------------------------------------------------------
    def do_HEAD(self):
        self._get(head=True)

    def do_GET(self):
        self._get(head=False)

    def _get(self, head: bool):
        if self._bad_host(head):
            return None
        segments = path_segments(self.path)
        if segments is None or not self._host_ok():
            return self._not_found(head)
        d = self.dashboard
        try:
            if segments in ([], ["index.html"]):
                body, etag, data = d.state()
                nonce = secrets.token_urlsafe(18)  # new for each response: a page cannot guess another's
                page = dashboard_html(data, d.token, etag, d.interval_ms, nonce).encode()
                return self._send(200, page, "text/html; charset=utf-8",
                                  {"Cache-Control": "no-store", "Content-Security-Policy": dashboard_policy(nonce),
                                   "X-Frame-Options": "DENY"}, head)
            if segments == ["api", "state"]:
                body, etag, _ = d.state()
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, b"", "application/json", {"ETag": etag}, head=True)
                return self._send(200, body, "application/json", {"ETag": etag, "Cache-Control": "no-cache"}, head)
            if len(segments) == 2 and segments[0] == "assets" and segments[1] in ASSET_TYPES:
                path = plotly_js_path() if segments[1] == "plotly.min.js" else ASSETS / segments[1]
                return self._send(200, path.read_bytes(), ASSET_TYPES[segments[1]], {"Cache-Control": "max-age=3600"}, head)
            if len(segments) >= 3 and segments[0] == "files":
                target = d.artifact(segments[1], segments[2:])
                if target is not None:
                    # a file a run wrote is data, never a page: an SVG's script or an HTML sample must not
                    # run with the dashboard's origin (and its control token)
                    return self._send(200, target.read_bytes(), mime_type(target.name),
                                      {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                                       "Content-Security-Policy": "sandbox; default-src 'none'; "
                                       "img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"}, head)
        except (BrokenPipeError, ConnectionResetError):
            return None
        return self._not_found(head)

    def do_POST(self):
        if self._bad_host():
            return None
        segments = path_segments(self.path)
        if segments is None or not self._host_ok():
            return self._not_found()
        d = self.dashboard
        if not (len(segments) == 4 and segments[:2] == ["api", "runs"] and segments[3] in ("stop", "resume")):
            return self._not_found()
        if not d.allow_control:
            return self._json(403, {"error": "this dashboard is read-only; start it with --allow-control "
                                             "to stop and resume runs"})
        # a page from another site cannot read the token, nor send this header without a preflight
        if not d.token or not secrets.compare_digest(self.headers.get("X-Kernel-Token") or "", d.token):
            return self._json(403, {"error": "missing or wrong X-Kernel-Token (use the dashboard page)"})
        if not (self.dashboard.root / segments[2] / "run.json").is_file():
            return self._json(404, {"error": f"no run {segments[2]}"})
        status, payload = d.stop(segments[2]) if segments[3] == "stop" else d.resume(segments[2])
        return self._json(status, payload)

    def _method_not_allowed(self):
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", "text/plain; charset=utf-8",
                   {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed


class DashboardServer(ThreadingHTTPServer):
    """One thread per connection, but at most ``max_connections`` at once: the rest are closed at
    once, so idle sockets cannot hold an unbounded number of threads."""

    daemon_threads = True
    allow_reuse_address = True
    max_connections = MAX_CONNECTIONS
    request_queue_size = 128  # the listen backlog: a burst of page loads waits to be accepted, not refused

    def __init__(self, *args, **kwargs):
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._deadlines: dict = {}  # connection -> when its request line and headers must be in
        self._deadlines_lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(*args, **kwargs)
        threading.Thread(target=self._close_late_requests, daemon=True, name="dashboard-deadlines").start()

    def expect_request(self, connection, within: float):
        with self._deadlines_lock:
            self._deadlines[connection] = time.monotonic() + within

    def request_read(self, connection):
        with self._deadlines_lock:
            self._deadlines.pop(connection, None)

    def _close_late_requests(self):
        """One thread for all connections: a request still incomplete at its deadline is cut."""
        while not self._closing.wait(0.2):
            now = time.monotonic()
            with self._deadlines_lock:
                late = [c for c, deadline in self._deadlines.items() if deadline < now]
                for connection in late:
                    del self._deadlines[connection]
            for connection in late:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def shutdown_request(self, request):
        self.request_read(request)
        super().shutdown_request(request)

    def server_close(self):
        self._closing.set()
        super().server_close()

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refuse this one rather than queue a thread for it
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(workspace: Path, host: str = "127.0.0.1", port: int = 8787, allow_control: bool = False,
                metric: str | None = None, interval_ms: int = 2000, quiet: bool = True,
                idle_timeout: float = IDLE_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS,
                catalog=None) -> ThreadingHTTPServer:
    """A started-but-not-serving dashboard server (call ``serve_forever``); port 0 picks a free port.
    ``catalog``: whose plugins add sections to the page (default: the process's catalog)."""
    dashboard = Dashboard(workspace, allow_control, metric, interval_ms, host, catalog)
    handler = type("DashboardHandler", (Handler,), {"dashboard": dashboard, "quiet": quiet, "timeout": idle_timeout})
    server_class = type("DashboardServer", (DashboardServer,),
                        {"max_connections": max_connections,
                         "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
    server = server_class((host, port), handler)
    server.dashboard = dashboard
    return server
