"""The explanations of two real runs in the report and the live dashboard, in Chromium (Debian's
/usr/bin/chromium driven by Playwright; nothing downloaded, the network cut): the section is there,
its pictures load, nothing goes wrong on the page; and markup from a hostile run folder runs nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kernel.testing import LOCAL_SCHEMES, dashboard, in_browser, need_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECTION = ".plugin-section[data-plugin='interpret']"
HOSTILE = "<img src=x onerror=alert(1)>"


def check_section(tab, models: list[str]):
    """The section is visible, a grid of 4 samples by the two models, every picture loaded."""
    tab.wait_for_selector(f"{SECTION} table.interp-grid", timeout=30000)
    section = tab.locator(SECTION)
    assert section.locator("h2").inner_text() == "Explanations: two-cnns"
    assert section.locator("table.interp-grid").first.is_visible()
    heads = section.locator("table.interp-grid").first.locator("thead th[data-run]").all_inner_texts()
    assert sorted(h.split("\n")[0] for h in heads) == sorted(models)
    assert section.locator("tbody tr[data-index]").count() == 4
    images = section.locator("td.interp-cell img")
    assert images.count() == 8
    images.first.scroll_into_view_if_needed()
    tab.wait_for_function(f"""() => [...document.querySelectorAll("{SECTION} td.interp-cell img")]
                                     .every(i => i.complete)""", timeout=10000)
    widths = images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), widths
    assert section.locator(".interp-passed, .interp-failed").count() == 2
    assert tab.locator(".plugin-warning").count() == 0


@pytest.fixture(scope="module")
def report(explained_workspace, kernel_cli) -> Path:
    need_browser()
    proc = kernel_cli("report", "--workflow", "two-cnns", "-o", "page.html", home=explained_workspace)
    assert proc.returncode == 0, proc.stderr
    return explained_workspace / "page.html"


def test_the_report_shows_the_explanations(report, explained_workspace, tmp_path):
    models = [json.loads(p.read_text())["model"] for p in explained_workspace.glob("runs/*/run.json")]

    def check(page):
        page.goto(report.as_uri())
        check_section(page, models)
        page.locator(f"{SECTION} details.interp-summary summary").first.click()  # the folded summary opens
        assert page.locator(f"{SECTION} details.interp-summary li").first.is_visible()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert page.errors == [] and page.dialogs == []
        assert page.blocked == [] and all(u.startswith(LOCAL_SCHEMES) for u in page.requests)
    in_browser(check)


def test_markup_from_a_run_folder_runs_nothing(explained_workspace, kernel_cli, tmp_path):
    need_browser()
    home = tmp_path / "hostile"
    for folder in explained_workspace.glob("runs/*/"):
        info = json.loads((folder / "run.json").read_text())
        target = home / "runs" / folder.name
        shutil.copytree(folder / "artifacts" / "explanations", target / "artifacts" / "explanations")
        info["model"] = HOSTILE
        (target / "run.json").write_text(json.dumps(info))
        for path in target.glob("artifacts/explanations/*/explanation.json"):
            record = json.loads(path.read_text())
            for sample in record["samples"]:
                sample.update(true_text=HOSTILE, predicted_text=HOSTILE)
            record["summary"] = {HOSTILE: {"samples": 1, "top": [{"feature": HOSTILE, "value": 1.0}]}}
            record["samples"][0]["picture"] = "page.html"
            path.write_text(json.dumps(record))
            (path.parent / "page.html").write_text(f"<p>hi</p><script>alert(4)</script>{HOSTILE}")
    proc = kernel_cli("report", "--workflow", "two-cnns", "-o", "page.html", home=home)
    assert proc.returncode == 0, proc.stderr

    def check(page):
        page.goto((home / "page.html").as_uri())
        page.wait_for_selector(f"{SECTION} table.interp-grid", timeout=30000)
        page.locator(f"{SECTION} details.interp-summary summary").first.click()
        page.wait_for_timeout(500)
        assert page.dialogs == []
        assert page.locator(f"{SECTION} td.interp-cell img[src='x']").count() == 0
        assert HOSTILE in page.locator(SECTION).inner_text()  # shown as text
        assert page.locator(f"{SECTION} iframe[sandbox='']").count() >= 1
    in_browser(check)


def test_the_dashboard_shows_the_explanations(explained_workspace, report):
    models = [json.loads(p.read_text())["model"] for p in explained_workspace.glob("runs/*/run.json")]
    with dashboard(explained_workspace) as url:
        def check(page):
            page.goto(url + "/")
            check_section(page, models)  # its pictures load under the dashboard's content security policy
            assert page.errors == [] and page.dialogs == [] and page.blocked == []
        in_browser(check, allowed=url)
