"""The "Exports" section of a real run's report and of the live dashboard, in Chromium (Debian's
/usr/bin/chromium driven by Playwright through kernel.testing; nothing downloaded, the network cut):
one row per exported file, each verified, nothing going wrong on the page; and markup planted in
run.json's ``exports`` shows as text and runs nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.testing import LOCAL_SCHEMES, dashboard, in_browser, need_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WORKFLOW = """
name = "tiny"
seed = 0
[dataset]
use = "kernel.synthetic"
params = { num_samples = 128, shape = [12], num_classes = 3 }
split = { valid = 0.25 }
[[models]]
use = "kernel.mlp"
[trainer]
use = "kernel.supervised"
epochs = 1
batch_size = 32
"""
SECTION = ".plugin-section[data-plugin='onnx']"
HOSTILE = "<img src=x onerror=alert(1)>"
FILES = ["mlp.onnx", "mlp.torchscript.pt"]
VERIFIED = 5  # the "verified" column (report_section.COLUMNS)


def kernel_cmd(*args, home: Path) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "KERNEL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *map(str, args)], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A workspace with one run of `tiny`, exported to ONNX and TorchScript, and its report page.html."""
    need_browser()  # before a run is trained for nothing
    home = tmp_path_factory.mktemp("onnx-report")
    (home / "tiny.toml").write_text(WORKFLOW)
    proc = kernel_cmd("run", "tiny.toml", "--quiet", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (rid,) = [p.name for p in (home / "runs").iterdir() if (p / "run.json").is_file()]
    proc = kernel_cmd("export", rid, "--format", "onnx", "--format", "torchscript", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = kernel_cmd("report", "-o", "page.html", home=home)
    assert proc.returncode == 0, proc.stderr
    return home


def rows(page) -> list[list[str]]:
    """The Exports table's rows, each a list of its cells' texts."""
    page.wait_for_selector(f"{SECTION} table.exports tbody tr", timeout=30000)
    return page.locator(f"{SECTION} table.exports tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.innerText.trim()))")


def check_section(page):
    section = page.locator(SECTION)
    assert section.is_visible() and section.locator("h2").inner_text() == "Exports"
    found = rows(page)
    assert sorted(r[3] for r in found) == FILES, found
    assert [r[VERIFIED] for r in found] == ["yes", "yes"], found
    assert {r[2] for r in found} == {"onnx", "torchscript"} and all(r[1] == "mlp" for r in found), found
    assert page.locator(".plugin-warning").count() == 0


def test_the_report_shows_each_exported_file_verified(home, tmp_path):
    def check(page):
        page.goto((home / "page.html").as_uri())
        check_section(page)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert page.errors == [] and page.dialogs == []
        assert page.blocked == [] and all(u.startswith(LOCAL_SCHEMES) for u in page.requests)
    in_browser(check)


def test_markup_planted_in_the_exports_runs_nothing(home, tmp_path):
    hostile = tmp_path / "hostile"
    shutil.copytree(home / "runs", hostile / "runs")
    (info_path,) = hostile.glob("runs/*/run.json")
    info = json.loads(info_path.read_text())
    info["exports"].append({"format": "onnx", "path": f"/tmp/{HOSTILE}.onnx", "size": 1234, "verified": False,
                            "max_abs_error": 0.5})
    info_path.write_text(json.dumps(info))
    proc = kernel_cmd("report", "-o", "page.html", home=hostile)
    assert proc.returncode == 0, proc.stderr

    def check(page):
        page.goto((hostile / "page.html").as_uri())
        found = rows(page)
        page.wait_for_timeout(300)  # an injected onerror would have fired by now
        assert page.dialogs == [] and page.errors == []
        assert page.locator(f"{SECTION} img").count() == 0
        (planted,) = [r for r in found if HOSTILE in r[3]]
        assert planted[3] == f"{HOSTILE}.onnx" and planted[VERIFIED] == "REFUSED"  # shown as text
        assert sorted(r[VERIFIED] for r in found) == ["REFUSED", "yes", "yes"]
        assert page.blocked == []
    in_browser(check)


def test_the_dashboard_shows_the_exports(home):
    with dashboard(home) as url:
        def check(page):
            page.goto(url + "/")
            check_section(page)  # under the dashboard's content security policy
            assert page.errors == [] and page.dialogs == [] and page.blocked == []
        in_browser(check, allowed=url)
