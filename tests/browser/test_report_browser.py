"""The report written by the real `kernel report`, opened from disk in Chromium with the network cut."""
from __future__ import annotations

import csv
import io

import pytest
from runstore_fixtures import write_run

pytestmark = pytest.mark.browser

RUNS = {"mlp": 0.7, "cnn": 0.9, "resnet": 0.8}


@pytest.fixture
def report(workspace, cli):
    root = workspace / "runs"
    for i, (model, quality) in enumerate(RUNS.items()):
        write_run(root, model=model, quality=quality, index=i, params={"hidden": 32 * (i + 1)},
                  epochs_done=3 if model == "resnet" else None, audio=(model == "cnn"))
    write_run(root, workflow="other", model="rnn", index=9, fingerprint="elsewhere")
    result = cli("report", "--workflow", "digits", "-o", "report.html")
    assert result.returncode == 0, result.stderr
    return workspace / "report.html"


def traces(page, role="metric"):
    return page.evaluate("r => document.getElementById('curves').data.filter(t => t.meta.role === r)"
                         ".map(t => ({run: t.meta.run, color: t.line.color, n: t.x.length}))", role)


def column(page, key):
    return page.eval_on_selector_all(f"#runs-table tbody td[data-key='{key}']", "tds => tds.map(td => td.textContent)")


def test_report_opens_offline_with_one_curve_per_run(open_page, report, tmp_path):
    w = open_page()
    w.page.goto(report.as_uri())
    w.page.wait_for_selector("#curves .main-svg")
    w.page.wait_for_selector("#samples .sample img")
    w.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert w.errors == []
    assert w.blocked == [] and all(u.startswith(("file:", "data:", "blob:")) for u in w.requests), w.requests
    curves = traces(w.page)
    ids = sorted(p.name for p in (report.parent / "runs").iterdir() if p.name.startswith("digits-"))
    assert sorted(t["run"] for t in curves) == ids  # one validation curve per run, none of the other workflow
    assert len({t["color"] for t in curves}) == len(RUNS)
    assert sorted(t["n"] for t in curves) == [3, 5, 5]
    # the same colour for a run everywhere: its curve, its training curve, its table swatch
    swatches = w.page.eval_on_selector_all("#runs-table tbody tr", "trs => trs.map(tr => [tr.dataset.run, "
                                           "getComputedStyle(tr.querySelector('.swatch')).backgroundColor])")
    hex_of = {t["run"]: t["color"] for t in curves}
    for run, rgb in swatches:
        r, g, b = (int(v) for v in rgb[rgb.index("(") + 1:-1].split(","))
        assert f"#{r:02x}{g:02x}{b:02x}" == hex_of[run]
    assert {t["run"]: t["color"] for t in traces(w.page, "companion")} == hex_of
    # the sections a user reads
    assert w.page.locator("#sec-confusion").is_visible()
    assert "cnn" in w.page.inner_text("#confusion-run")  # the best run's matrix
    assert w.page.locator("#reports .report h4").first.inner_text() == "Class balance"
    assert w.page.locator("#samples audio").count() == 4
    assert w.page.evaluate("document.getElementById('params').data.length") >= 1


def test_clicking_a_column_sorts_the_table(open_page, report, tmp_path):
    w = open_page()
    w.page.goto(report.as_uri())
    w.page.wait_for_selector("#runs-table tbody tr")
    w.page.click("#runs-table th[data-key='best']")
    values = [float(v) for v in column(w.page, "best")]
    assert values == sorted(values, reverse=True)  # accuracy: best first
    assert column(w.page, "run")[0].startswith("cnn")
    w.page.click("#runs-table th[data-key='best']")
    assert [float(v) for v in column(w.page, "best")] == sorted(values)
    w.page.click("#runs-table th[data-key='run']")
    labels = [v.split("digits-")[0] for v in column(w.page, "run")]
    assert labels == sorted(labels)
    w.page.click("#runs-table th[data-key='param:hidden']")
    assert [int(v) for v in column(w.page, "param:hidden")] == [32, 64, 96]
    w.page.focus("#runs-table th[data-key='param:hidden']")
    w.page.keyboard.press("Enter")  # the keyboard sorts too
    assert [int(v) for v in column(w.page, "param:hidden")] == [96, 64, 32]
    w.page.screenshot(path=str(tmp_path / "report-sorted.png"))
    assert w.errors == []


def test_curves_download_as_csv_and_png_and_follow_the_metric(open_page, report, tmp_path):
    w = open_page()
    w.page.goto(report.as_uri())
    w.page.wait_for_selector("#curves .main-svg")
    with w.page.expect_download() as info:
        w.page.click("#download-csv")
    rows = list(csv.DictReader(io.StringIO(open(info.value.path()).read())))
    assert len(rows) == 5 + 5 + 3 and {"run", "model", "epoch", "valid/accuracy", "train/loss"} <= set(rows[0])
    with w.page.expect_download() as info:
        w.page.click("#download-png")
    assert info.value.suggested_filename.endswith(".png")
    assert open(info.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    w.page.select_option("#metric", "valid/loss")
    w.page.wait_for_function("document.getElementById('curves').layout.yaxis.title.text === 'valid/loss'")
    assert w.page.inner_text("#runs-table th[data-key='best']") == "best valid/loss"
    w.page.click("#runs-table th[data-key='best']")
    values = [float(v) for v in column(w.page, "best")]
    assert values == sorted(values)  # a loss: lowest first
    assert w.errors == []


def test_text_from_run_files_is_shown_as_text(open_page, workspace, cli, tmp_path):
    """A run label or parameter name is data: no link, markup or hover template gets through."""
    label = '<a href="https://example.invalid/x">evil</a> %{y}'
    write_run(workspace / "runs", model=label, index=0, params={"<b>bold</b>": 1})
    write_run(workspace / "runs", model="plain", index=1, params={"<b>bold</b>": 2})
    assert cli("report", "-o", "report.html").returncode == 0
    w = open_page()
    w.page.goto((workspace / "report.html").as_uri())
    w.page.wait_for_selector("#params .main-svg")
    assert w.page.locator("svg a, #runs-table a, svg b").count() == 0
    assert label in w.page.text_content("#curves .legend")
    assert "<b>bold</b>" in w.page.text_content("#params")
    assert label in w.page.inner_text("#runs-table")
    assert w.errors == [] and w.blocked == []


def test_the_report_forbids_itself_any_request(open_page, report):
    """Its content security policy makes the browser refuse a load that would leave the file."""
    w = open_page()
    w.page.goto(report.as_uri())
    w.page.wait_for_selector("#curves .main-svg")
    violated = w.page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', e => resolve(e.blockedURI));
        const img = document.createElement('img');
        img.src = 'https://example.invalid/pixel.png';
        document.body.appendChild(img);
        setTimeout(() => resolve(null), 5000);
    })""")
    assert violated == "https://example.invalid/pixel.png"
    assert w.blocked == []  # refused by the page itself, before the test's network guard saw it


def test_what_a_user_sees_media_zoom_confusion_per_run_pinned_columns(open_page, workspace, cli, tmp_path):
    """A renderer's HTML in a sandboxed frame (no script runs, no CSP error), a sample picture that
    enlarges on click, each run's confusion matrix, the run column pinned while a wide table scrolls,
    and a queued run that makes no parameter column differ."""
    import json

    root = workspace / "runs"
    many = {f"p{i}": "x" * 30 for i in range(12)}  # a wide table: a dozen long parameters that differ
    best = write_run(root, model="mlp", quality=0.9, index=0, params={**many, "hidden": 64})
    write_run(root, model="cnn", quality=0.6, index=1, params={k: "y" * 30 for k in many} | {"hidden": 64})
    write_run(root, model="vit", index=2, status="queued", epochs_done=0, artifacts=False, params={"extra": 1})
    samples = best / "artifacts" / "samples"
    (samples / "0_target.html").write_text("<p id='r'>rendered <b>HTML</b></p><script>parent.document.title='pwned'</script>")
    entries = json.loads((samples / "samples.json").read_text())
    entries[0]["target"] = "0_target.html"
    (samples / "samples.json").write_text(json.dumps(entries))
    assert cli("report", "--workflow", "digits", "-o", "r.html").returncode == 0
    w = open_page()
    w.page.goto((workspace / "r.html").as_uri())
    w.page.wait_for_selector("#samples iframe")
    frame = w.page.locator("#samples iframe").first
    assert frame.get_attribute("sandbox") == "" and "pwned" not in w.page.title()
    assert w.page.frame_locator("#samples iframe").first.locator("#r").inner_text() == "rendered HTML"
    # a picture enlarges on click, and closes on Escape
    w.page.locator("#samples img.zoomable").first.click()
    assert w.page.locator("#lightbox").is_visible()
    box = w.page.locator("#lightbox img").bounding_box()
    assert box["width"] > 300
    w.page.screenshot(path=str(tmp_path / "report-zoom.png"))
    w.page.keyboard.press("Escape")
    assert w.page.locator("#lightbox").is_hidden()
    # one confusion matrix per run, the best run's first
    options = w.page.eval_on_selector_all("#confusion-pick option", "os => os.map(o => o.textContent)")
    assert len(options) == 2 and options[0].startswith("mlp")
    w.page.select_option("#confusion-pick", index=1)
    assert "cnn" in w.page.inner_text("#confusion-run")
    # the table scrolls sideways inside its box, the run column stays in view
    heads = w.page.eval_on_selector_all("#runs-table th", "ths => ths.map(th => th.dataset.key)")
    assert "param:extra" not in heads and "param:hidden" not in heads and "param:p0" in heads
    wrap = w.page.locator("#sec-table .table-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
    assert w.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # the page itself fits
    wrap.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    run_cell = w.page.locator("#runs-table tbody td[data-key='run']").first.bounding_box()
    wrap_box = wrap.bounding_box()
    assert abs(run_cell["x"] - wrap_box["x"]) < 2  # pinned at the left edge after scrolling
    w.page.screenshot(path=str(tmp_path / "report-table.png"), full_page=True)
    sandboxed = [e for e in w.errors if "Blocked script execution in 'about:srcdoc'" in e]
    assert sandboxed and len(w.errors) == len(sandboxed), w.errors  # the renderer's script was refused, nothing else failed
