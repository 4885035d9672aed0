"""Plugins' sections (hook ``kernel_report_sections``) in Chromium: in the report and in the live
dashboard, a section's markup stays inside its own section and its inline scripts run; a plugin
whose hook raises is a warning naming it, and the rest of the page is drawn. In the dashboard the
scripts run by the response's nonce while an inline event handler is refused, and a section that
changes is placed again without reloading the page."""
from __future__ import annotations

import pytest
from runstore_fixtures import DashboardProcess, write_run

pytestmark = pytest.mark.browser

SECTIONS = """
from kernel import Section, hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    note = workspace / "ksec-note.txt"
    text = note.read_text() if note.exists() else "first"
    return [Section("Seen by ksec", (
        f'<div id="ksec-box">{text}: {len(runs)} runs</div>'
        '<script>var box = document.getElementById("ksec-box"); box.dataset.ran = "ran " + box.textContent;</script>'
        # markup that would close the page's own elements, were it not parsed inside its section
        '<p id="ksec-inside">inside</div></section></main><p id="ksec-stray">stray</p>'))]
"""

RAISING = """
from kernel import hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    raise RuntimeError("the study database is unreachable")
"""

HANDLER = """
from kernel import Section, hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    return [Section("Inline handler", '<img id="khandler" alt="" src="data:," '
                                      'onerror="document.body.dataset.handler = 1">')]
"""


@pytest.fixture
def store(workspace):
    write_run(workspace / "runs", model="mlp", quality=0.7, index=0)
    write_run(workspace / "runs", model="cnn", quality=0.9, index=1)
    return workspace / "runs"


def check_sections(w, text: str):
    page = w.page
    page.wait_for_selector(f"#ksec-box[data-ran='ran {text}: 2 runs']", timeout=15000)
    assert page.inner_text("#plugin-ksec-1 > h2") == "Seen by ksec"
    assert page.locator("#plugin-ksec-1 #ksec-stray").count() == 1  # kept inside its section
    assert page.locator("main > #sec-dataset").count() == 1 and page.locator("#curves .main-svg").count() >= 1
    (warning,) = page.eval_on_selector_all(".plugin-warning", "ps => ps.map(p => p.textContent)")
    assert "plugin 'ksecraise'" in warning and "RuntimeError: the study database is unreachable" in warning


def test_the_report_shows_sections_and_names_a_broken_plugin(open_page, fake_plugin, store, cli, workspace, tmp_path):
    fake_plugin("ksec", SECTIONS)
    env = fake_plugin("ksecraise", RAISING)
    result = cli("report", "--workflow", "digits", "-o", "report.html", env=env)
    assert result.returncode == 0, result.stderr
    w = open_page()
    w.page.goto((workspace / "report.html").as_uri())
    check_sections(w, "first")
    w.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert w.errors == [] and w.blocked == []


def test_the_dashboard_runs_section_scripts_by_nonce_only_and_follows_changes(open_page, fake_plugin, store,
                                                                              workspace, monkeypatch, tmp_path):
    fake_plugin("ksec", SECTIONS)
    fake_plugin("ksecraise", RAISING)
    monkeypatch.setenv("PYTHONPATH", fake_plugin("khandler", HANDLER)["PYTHONPATH"])
    with DashboardProcess(workspace, "--interval", "0.5") as d:
        w = open_page(allowed_origin=d.url)
        w.page.goto(d.url + "/")
        check_sections(w, "first")
        w.page.wait_for_selector("#khandler", state="attached")
        (workspace / "ksec-note.txt").write_text("second")
        check_sections(w, "second")  # placed again, its script run again with the page's nonce
        assert w.page.url == d.url + "/"  # no reload: the page polled
        w.page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert w.page.evaluate("document.body.dataset.handler") is None  # an inline handler runs nothing
        # read while the server lives: once it stops, the page's next poll fails (a reset connection)
        errors, blocked = list(w.errors), list(w.blocked)
    # the one error: the browser refusing the handler (its wording varies between versions)
    assert errors and all("inline event handler" in e and "Content Security Policy" in e for e in errors), errors
    assert blocked == []
