"""A real `kernel tune` of a tiny workflow, then its report and the live dashboard in Chromium
(Debian's /usr/bin/chromium driven by Playwright; nothing downloaded, the network cut): the tuning
section is there with Optuna's charts drawn, and nothing goes wrong on the page — in the dashboard
under its content security policy, which runs only scripts carrying the response's nonce."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from kernel.testing import LOCAL_SCHEMES, dashboard, in_browser, need_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WORKFLOW = """
name = "tiny"
[dataset]
use = "kernel.synthetic"
num_samples = 300
[[models]]
use = "kernel.mlp"
[trainer]
epochs = 2
optimizer = { use = "torch.optim.AdamW", lr = 0.01 }
[tuning]
trials = 4
space = { "trainer.optimizer.lr" = { float = [1e-3, 1e-1], log = true } }
"""
CHARTS = ("history", "parallel", "slices")  # and importances, unless every trial scored the same


def kernel(*args, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=home, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "KERNEL_HOME": str(home)})


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A workspace where `kernel tune` ran a study of 4 trials, and `kernel report --study` wrote its page."""
    need_browser()  # before a study is run for nothing
    home = tmp_path_factory.mktemp("tuned")
    (home / "tiny.toml").write_text(textwrap.dedent(WORKFLOW))
    proc = kernel("tune", "tiny.toml", "--quiet", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / "studies" / "tiny.json").is_file()
    proc = kernel("report", "--study", "tiny", "-o", "report.html", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "report of 4 runs" in proc.stdout
    return home


def charts(tab) -> dict:
    """The tuning section's drawn charts: {kind: number of SVG elements plotly drew in it}."""
    tab.wait_for_selector(".plugin-section[data-plugin='tuning'] .js-plotly-plot .main-svg", timeout=30000)
    found = tab.eval_on_selector_all(".plugin-section[data-plugin='tuning'] .js-plotly-plot",
                                     "divs => divs.map(d => [d.id, d.querySelectorAll('svg .plot, svg .trace, "
                                     "svg path').length])")
    return {div_id.rsplit("-", 1)[1]: count for div_id, count in found}


def check_section(tab):
    section = tab.locator(".plugin-section[data-plugin='tuning']")
    assert section.locator("h2").inner_text() == "Tuning study tiny"
    drawn = charts(tab)
    assert set(CHARTS) <= set(drawn) and all(drawn[kind] > 0 for kind in drawn), drawn
    if "importances" not in drawn:  # said why instead
        assert "No parameter importances" in section.inner_text()
    best = section.locator("table.tuning-best").inner_text()
    assert "trainer.optimizer.lr" in best and "tiny-mlp-" in best
    counts = section.locator("table.tuning-states td.num").all_inner_texts()
    assert sum(map(int, counts)) == 4 and "COMPLETE" in section.locator("table.tuning-states").inner_text()
    assert tab.evaluate("typeof Plotly") == "object" and tab.locator("#curves .main-svg").count() >= 1
    assert tab.locator(".plugin-warning").count() == 0


def test_the_report_of_a_tuned_workflow_shows_the_study(tuned, tmp_path):
    def check(page):
        page.goto((tuned / "report.html").as_uri())
        check_section(page)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert page.errors == [] and page.dialogs == []
        assert page.blocked == [] and all(u.startswith(LOCAL_SCHEMES) for u in page.requests)
    in_browser(check)


def test_the_dashboard_shows_the_study_under_its_policy(tuned, tmp_path):
    with dashboard(tuned) as url:
        with urllib.request.urlopen(url + "/") as resp:
            policy = resp.headers["Content-Security-Policy"]
        script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
        assert "'nonce-" in script_src and "unsafe-inline" not in script_src

        def check(page):
            page.goto(url + "/")
            check_section(page)
            # a few polls later the section is the same element: kept, not drawn again
            page.evaluate("document.querySelector('.plugin-section .js-plotly-plot').dataset.seen = 'yes'")
            page.wait_for_timeout(2500)
            assert page.evaluate("document.querySelector('.plugin-section .js-plotly-plot').dataset.seen") == "yes"
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert page.errors == [] and page.dialogs == [] and page.blocked == []
        in_browser(check, allowed=url)
