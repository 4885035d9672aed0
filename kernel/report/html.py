"""The page's HTML: the offline report (everything inlined) and the dashboard's page (files served).

plotly.js comes from the installed ``plotly`` wheel (``plotly/package_data/plotly.min.js``), never
from a CDN: the report must open without a network, and the dashboard serves the same file.
"""
from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

from .page import build_page, to_script_json

ASSETS = Path(__file__).with_name("assets")
#: The report may load nothing: its scripts, styles, images and sounds are all in the file. The
#: policy makes the browser itself refuse any request, should a reference ever slip in.
REPORT_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "img-src data: blob:; media-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'")
#: The dashboard loads from itself only; no page of another site may frame it (its buttons act).
#: Its inline scripts are those that carry the page's nonce, new for every response: the page's own
#: start-up and, re-created by the page's code with that nonce, the scripts of plugins' sections
#: (their charts). A nonce rather than hashes because sections change while the page is open (a
#: study gains trials) and the page places the new ones without reloading, when the policy it was
#: served with can no longer list their hashes. Markup that slips into the page by any other way
#: (text of a run file) runs nothing: 'unsafe-inline' is gone, and browsers ignore it anyway once a
#: nonce is listed. Styles stay inline-friendly: plotly.js sets them on every chart.
DASHBOARD_POLICY = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                    "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; "
                    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def dashboard_policy(nonce: str) -> str:
    """The dashboard page's content security policy for one response (``nonce``: its scripts' nonce)."""
    return DASHBOARD_POLICY.format(nonce=nonce)


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """The minified plotly.js bundle that the ``plotly`` Python package ships."""
    from ..errors import KernelError

    try:
        import importlib.util

        spec = importlib.util.find_spec("plotly")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise KernelError("the report needs the `plotly` package (its plotly.js draws the charts): "
                          "pip install plotly")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise KernelError("the installed `plotly` package has no package_data/plotly.min.js; reinstall it "
                      "(pip install --force-reinstall plotly)")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The text of plotly.js (read once: the report inlines it, sections are checked against it)."""
    return plotly_js_path().read_text(encoding="utf-8")


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _page(title: str, head: str, data_json: str, boot: str, nonce: str = "") -> str:
    template = asset("page.html")
    # boot and data go in last: the data is user text and must not be scanned for placeholders
    out = (template.replace("{{nonce}}", f' nonce="{nonce}"' if nonce else "")
           .replace("{{title}}", html.escape(title)).replace("{{head}}", head))
    before, _, after = out.partition("{{data}}")
    data_tag = f'<script type="application/json" id="kernel-data">{data_json}</script>'
    before_boot, _, end = after.partition("{{boot}}")
    return before + data_tag + before_boot + boot + end


def plugin_sections(runs, workspace=None, catalog=None) -> dict:
    """The plugins' sections for ``runs`` (:func:`kernel.report.sections.collect`), the page's
    ``plugin_sections``; ``workspace`` defaults to the one whose store holds the runs."""
    from ..catalog import get_catalog
    from .sections import collect, workspace_of

    catalog = catalog or get_catalog()
    return collect(runs, workspace if workspace is not None else workspace_of(runs), catalog.plugins,
                   page_scripts=(plotly_js(),))


def report_html(runs, metric: str | None = None, title: str | None = None, workspace=None, catalog=None) -> str:
    """The whole report as one HTML document: styles, plotly.js, the page's code and data, images,
    and the sections plugins add (``catalog``: whose plugins are asked; default the process's)."""
    data = build_page(runs, metric=metric, title=title)
    data["plugin_sections"] = plugin_sections(runs, workspace, catalog)
    plotly_js_text = plotly_js()
    head = (f'<meta http-equiv="Content-Security-Policy" content="{REPORT_POLICY}">\n'
            f"<style>{asset('style.css')}</style>\n<script>{plotly_js_text}</script>\n"
            f"<script>{asset('app.js')}</script>")
    boot = "KernelPage.start(JSON.parse(document.getElementById('kernel-data').textContent), {});"
    return _page(data["title"], head, to_script_json(data), boot)


def dashboard_html(data: dict, token: str | None, etag: str | None, interval_ms: int = 2000, nonce: str = "") -> str:
    """The dashboard's page: assets served by the dashboard, the current state inlined to start from.
    ``nonce``: the one its content security policy (:func:`dashboard_policy`) names for this response."""
    head = ('<link rel="stylesheet" href="/assets/style.css">\n<script src="/assets/plotly.min.js"></script>\n'
            '<script src="/assets/app.js"></script>')
    options = {"live": True, "stateUrl": "/api/state", "token": token, "etag": etag, "interval": interval_ms}
    boot = ("KernelPage.start(JSON.parse(document.getElementById('kernel-data').textContent), "
            + json.dumps(options).replace("<", "\\u003c") + ");")
    return _page(data["title"], head, to_script_json(data), boot, nonce)


def write_report(runs, path, metric: str | None = None, title: str | None = None, catalog=None) -> Path:
    """Write the report of ``runs`` to ``path`` (atomically) and return its path.

    ``runs``: :class:`kernel.store.Run` objects (``Results.runs``) or run directories (paths).
    From Python: ``write_report(results.runs, "report.html")``. ``catalog``: whose plugins add
    sections (default: the process's catalog, every plugin not disabled).
    """
    from ..errors import KernelError
    from ..run_reader import open_run
    from ..store import Run, write_atomic

    loaded = []
    for item in runs:
        if isinstance(item, Run):
            loaded.append(item)
            continue
        folder = Path(item)
        run = open_run(folder)
        if run is None:
            raise KernelError(f"cannot read {folder / 'run.json'}: it is missing or not valid JSON")
        loaded.append(run)
    if not loaded:
        raise KernelError("no runs to report on")
    out = Path(path)
    if out.is_dir():
        raise KernelError(f"-o {out}: is a folder; give a file name such as {out / 'report.html'}")
    if not out.parent.is_dir():
        raise KernelError(f"-o {out}: folder {out.parent} does not exist; create it or choose another path")
    write_atomic(out, report_html(loaded, metric=metric, title=title, catalog=catalog).encode("utf-8"))
    return out
