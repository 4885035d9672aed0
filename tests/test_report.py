"""`kernel report`: reading run directories as they are being written, the page's data, and the one
self-contained HTML file (no external reference, images and sounds inlined)."""
from __future__ import annotations

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runstore_fixtures import append_epoch, metric_row, write_run  # noqa: E402

from kernel import Section, hookimpl  # noqa: E402
from kernel.report.html import plotly_js_path, report_html  # noqa: E402
from kernel.report.page import build_page, to_script_json  # noqa: E402
from kernel.report.runs import StoreReader  # noqa: E402
from kernel.run_reader import open_run  # noqa: E402


@pytest.fixture
def store(workspace):
    """Three runs of workflow digits on one dataset (cnn best), one of another workflow on other data."""
    root = workspace / "runs"
    write_run(root, model="mlp", quality=0.7, index=0, params={"hidden": 64})
    write_run(root, model="cnn", quality=0.9, index=1, params={"hidden": 128}, audio=True)
    write_run(root, model="resnet", quality=0.8, index=2, params={"hidden": 32}, epochs_done=3, status="interrupted")
    write_run(root, workflow="speech", model="rnn", quality=0.5, index=3, fingerprint="aa00ff")
    return root


class ExternalRefs(HTMLParser):
    """Every attribute of the document that would make a browser fetch something from elsewhere."""

    def __init__(self):
        super().__init__()
        self.found = []
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value and not value.startswith("data:"):
                self.found.append((tag, name, value))


# -- reading runs being written ----------------------------------------------------------------
def test_a_cut_last_line_of_metrics_is_skipped(tmp_path):
    run = write_run(tmp_path / "runs", epochs_done=2)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "valid/accuracy": 0.')  # the trainer is writing this line now
    assert [r["epoch"] for r in open_run(run).metrics()] == [1, 2]
    assert build_page([open_run(run)])["curves"][run.name]["epoch"] == [1, 2]


def test_half_created_and_damaged_runs_are_left_out_of_the_page(tmp_path):
    root = tmp_path / "runs"
    good = write_run(root, index=0)
    (root / "digits-new-20261122-090000-beef").mkdir()  # created, run.json not written yet
    broken = write_run(root, index=1)
    (broken / "run.json").write_text('{"id": "digits-mlp-2026')  # damaged (a crash mid-copy)
    runs = StoreReader(root).scan()
    assert [r.id for r in runs] == [good.name]


def test_the_reader_sees_new_epochs_and_statuses(tmp_path):
    root = tmp_path / "runs"
    run = write_run(root, epochs_done=2, status="running", pid=__import__("os").getpid())
    reader = StoreReader(root)
    assert len(reader.scan()[0].metrics()) == 2
    append_epoch(run, metric_row(3, 0.8))
    again = reader.scan()[0]
    assert [r["epoch"] for r in again.metrics()] == [1, 2, 3]
    assert again.status == "running"  # its process (this test) is alive


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    run = write_run(tmp_path / "runs", status="running", pid=999_999_999)
    assert open_run(run).status == "interrupted"


def test_nan_in_metrics_becomes_a_gap_not_invalid_json(tmp_path):
    run = write_run(tmp_path / "runs", epochs_done=1)
    append_epoch(run, {**metric_row(2, 0.8), "valid/loss": float("nan")})
    text = to_script_json(build_page([open_run(run)]))
    assert "NaN" not in text
    assert json.loads(text)["curves"][run.name]["valid/loss"][1] is None


def test_a_foreign_or_damaged_run_json_still_renders(tmp_path):
    run = write_run(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    info.update(params=[1, 2], defaults="x", tags="abc", best=[0.5], final=None, monitor=3, mode="up",
                epochs="five", param_count="many", pid="x", host=None, model=None)
    (run / "run.json").write_text(json.dumps(info))
    data = json.loads(to_script_json(build_page([open_run(run)])))
    (summary,) = data["runs"]
    assert summary["label"] == run.name and summary["tags"] == [] and summary["epochs_done"] == 5
    assert data["groups"][0]["metric"] == "valid/loss"  # the first validation curve, the monitor being unusable


# -- the page's data ---------------------------------------------------------------------------
def test_runs_are_grouped_by_dataset_and_the_best_run_gives_the_confusion_matrix(store):
    data = build_page(StoreReader(store).scan())
    by_model = {r["label"]: r for r in data["runs"]}
    assert len({r["color"] for r in data["runs"]}) == len(data["runs"])  # one colour per run
    groups = {g["fingerprint"]: g for g in data["groups"]}
    digits = groups["3f9a1c2e7b6d"]
    assert sorted(digits["runs"]) == sorted(by_model[m]["id"] for m in ("mlp", "cnn", "resnet"))
    assert groups["aa00ff"]["runs"] == [by_model["rnn"]["id"]]
    assert digits["metric"] == "valid/accuracy" and digits["best_run"] == by_model["cnn"]["id"]
    assert digits["dataset"]["confusion"]["run"] == by_model["cnn"]["id"]
    assert digits["dataset"]["samples_run"] == by_model["cnn"]["id"]  # the best run's predictions
    assert digits["dataset"]["reports"][0]["title"] == "Class balance"


def test_a_minimised_metric_ranks_the_lowest_best(store):
    data = build_page(StoreReader(store).scan(), metric="valid/loss")
    digits = next(g for g in data["groups"] if g["fingerprint"] == "3f9a1c2e7b6d")
    best = next(r for r in data["runs"] if r["id"] == digits["best_run"])
    assert digits["mode"] == "min" and best["label"] == "cnn"


# -- the report file ---------------------------------------------------------------------------
def test_the_report_is_one_file_with_no_external_reference(store):
    page = report_html(StoreReader(store).scan())
    refs = ExternalRefs()
    refs.feed(page)
    assert refs.found == []
    assert "cdn." not in page.split("<script>", 1)[0] and "@import" not in page.split("<script>", 1)[0]
    assert plotly_js_path().read_text() in page  # the charting library, from the plotly wheel, inlined
    data = json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    digits = next(g for g in data["groups"] if g["fingerprint"] == "3f9a1c2e7b6d")
    sample = digits["dataset"]["samples"][0]  # cnn's: its inputs are sounds, its targets pictures
    assert sample["input"].startswith("data:audio/wav;base64,") and sample["media"]["input"]["kind"] == "audio"
    assert sample["media"]["target"] == {"kind": "image", "src": sample["target"]}
    assert sample["target"].startswith("data:image/png;base64,")
    assert digits["dataset"]["reports"][0]["figure"].startswith("data:image/png;base64,")


def test_run_text_cannot_inject_markup(tmp_path):
    run = write_run(tmp_path / "runs", model="</script><img src=x onerror=alert(1)>")
    page = report_html([open_run(run)])
    assert "</script><img" not in page


# -- the command -------------------------------------------------------------------------------
def test_kernel_report_writes_the_last_trained_workflow_by_default(store, cli, workspace):
    result = cli("report", "-o", "out.html")
    assert result.returncode == 0, result.stderr
    assert "report of 1 run:" in result.stdout and str(workspace / "out.html") in result.stdout
    data = (workspace / "out.html").read_text()
    assert '"workflow":"speech"' in data and '"workflow":"digits"' not in data


def test_kernel_report_by_workflow_and_by_run(store, cli, workspace):
    result = cli("report", "--workflow", "digits", "-o", "digits.html")
    assert result.returncode == 0 and "report of 3 runs" in result.stdout, result.stderr
    one = next(p.name for p in store.iterdir() if "-cnn-" in p.name)
    result = cli("report", one[:-3], "-o", "one.html")  # a unique prefix of the id is enough
    assert result.returncode == 0 and "report of 1 run" in result.stdout, result.stderr


@pytest.mark.parametrize("args, words", [
    (["--workflow", "digitz"], ["no runs of workflow 'digitz'", "did you mean 'digits'"]),
    (["no-such-run"], ["no run 'no-such-run'"]),
    (["-o", "missing/folder/r.html"], ["folder missing/folder does not exist"]),
])
def test_kernel_report_mistakes_are_one_line(store, cli, args, words):
    result = cli("report", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


def test_kernel_report_with_an_empty_store_says_what_to_do(cli):
    result = cli("report")
    assert result.returncode == 2 and "kernel run" in result.stderr and "Traceback" not in result.stderr


def test_the_docs_name_every_option_of_both_commands():
    from kernel.cli import build_parser

    docs = (Path(__file__).resolve().parents[1] / "docs" / "report.md").read_text()
    parser, _, _ = build_parser(())
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("report", "dashboard"):
        flags = {o for a in sub.choices[name]._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        synopsis = next(line for line in docs.splitlines() if line.startswith(f"kernel {name} ["))
        assert flags <= set(synopsis.replace("[", " ").replace("]", " ").split()), (name, flags)


def test_write_report_from_python_takes_store_runs(store, tmp_path):
    from kernel.report.html import write_report
    from kernel.store import RunStore

    runs = [RunStore(store.parent).get(p.name) for p in sorted(store.iterdir()) if p.name.startswith("digits-")]
    out = write_report(runs, tmp_path / "r.html", metric="valid/loss")
    data = json.loads(out.read_text().split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["runs"]) == 3 and data["metric"] == "valid/loss"


# -- media come through renderers, by the file's suffix -------------------------------------------
def test_each_rendered_file_is_shown_by_its_suffix(tmp_path):
    """A renderer may write a picture, a sound or HTML: the report picks the element from the suffix
    alone, and reads no domain's keys (``audio``, ``<role>_audio`` mean nothing to it)."""
    run = write_run(tmp_path / "runs", samples=1)
    folder = run / "artifacts" / "samples"
    (folder / "0_input.ogg").write_bytes(b"OggS fake")
    (folder / "0_target.html").write_text("<b>the</b> <script>alert(1)</script>answer")
    (folder / "0_prediction.jpg").write_bytes(b"\xff\xd8\xff fake jpeg")
    (folder / "extra.wav").write_bytes(b"RIFF")
    entry = {"index": 0, "split": "valid", "input": "0_input.ogg", "target": "0_target.html",
             "prediction": "0_prediction.jpg", "audio": "extra.wav", "input_audio": "extra.wav",
             "prediction_text": "one (60%)"}
    (folder / "samples.json").write_text(json.dumps([entry]))
    data = build_page([open_run(run)])
    (sample,) = data["groups"][0]["dataset"]["samples"]
    assert sample["media"]["input"]["kind"] == "audio" and sample["input"].startswith("data:audio/ogg;base64,")
    assert sample["media"]["prediction"]["kind"] == "image" and sample["prediction"].startswith("data:image/jpeg;")
    assert sample["media"]["target"] == {"kind": "html", "html": "<b>the</b> <script>alert(1)</script>answer"}
    assert "extra.wav" not in json.dumps(sample) and "audio" not in sample  # no domain keys read
    page = report_html([open_run(run)])
    assert "<script>alert(1)" not in page  # the HTML travels as JSON text, into a sandboxed frame
    app = (Path(__file__).resolve().parents[1] / "kernel" / "report" / "assets" / "app.js").read_text()
    assert 'el("iframe", { sandbox: true, srcdoc: m.html' in app and 'el("audio", { controls: true' in app


def test_a_sample_file_name_cannot_lead_out_of_the_samples_folder(tmp_path):
    run = write_run(tmp_path / "runs", samples=1)
    (run / "artifacts" / "secret.html").write_text("secret")
    entry = {"index": 0, "input": "../secret.html", "target": "/etc/passwd", "prediction": ".hidden.png"}
    (run / "artifacts" / "samples" / "samples.json").write_text(json.dumps([entry]))
    (sample,) = build_page([open_run(run)])["groups"][0]["dataset"]["samples"]
    assert sample["media"] == {} and "secret" not in json.dumps(sample)


def test_no_domain_words_in_the_report():
    """Error rates of one domain (cer, wer) or its sample keys have no place in the report's code:
    which way a metric is better comes from kernel/metric_mode.py, media from the files' suffixes."""
    import re

    folder = Path(__file__).resolve().parents[1] / "kernel" / "report"
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".py", ".js", ".html", ".css"):
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(cer|wer)\b", text, re.I), path
        assert not re.search(r"_audio\b|\[.audio.\]|get\(.audio.\)|\.audio\b", text), path


def test_every_run_with_a_confusion_matrix_gives_it(store):
    data = build_page(StoreReader(store).scan())
    assert set(data["confusions"]) == {r["id"] for r in data["runs"]}  # every fixture run has one
    cnn = next(r["id"] for r in data["runs"] if r["label"] == "cnn")
    assert data["confusions"][cnn]["matrix"][0][0] == round(40 * 0.9)


def test_the_page_sends_which_way_each_metric_is_better(store):
    data = build_page(StoreReader(store).scan())
    assert data["modes"]["valid/loss"] == "min" and data["modes"]["valid/accuracy"] == "max"
    assert data["modes"]["lr"] == "max" and "epoch" not in data["modes"]


def test_runs_carry_a_short_id_and_settings_named_as_in_compare(store):
    data = build_page(StoreReader(store).scan())
    shorts = [r["short_id"] for r in data["runs"]]
    assert len(set(shorts)) == len(shorts) and all(r["id"].endswith(r["short_id"]) for r in data["runs"])
    mlp = next(r for r in data["runs"] if r["label"] == "mlp")
    assert mlp["params"]["hidden"] == 64 and mlp["params"]["model"] == "kernel.mlp"
    assert mlp["params"]["trainer.optimizer.lr"] == 1e-3 and "trainer.device" not in mlp["params"]


# -- plugins' sections (hook kernel_report_sections) -----------------------------------------------
class SectionsPlugin:
    """A plugin registered in this process (the hook tests in tests/test_hooks.py install them):
    its hook answers ``answer(runs, workspace)`` and keeps what it was given."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    @hookimpl
    def kernel_report_sections(self, runs, workspace):
        self.calls.append((runs, workspace))
        return self.answer(runs, workspace)


def catalog_with(**plugins):
    """A catalog of the installed plugins and these (name -> plugin object)."""
    from kernel.catalog import Catalog
    from kernel.plugins import PluginInfo, load_plugins

    loaded = load_plugins()
    for name, plugin in plugins.items():
        loaded.manager.register(plugin, name=name)
        loaded.infos[name] = PluginInfo(name, f"ktest-{name}")
    return Catalog(loaded)


def page_data(page: str) -> dict:
    return json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])


def test_a_section_is_given_the_runs_and_their_workspace_and_cannot_change_them(store):
    def answer(runs, workspace):
        runs[0]["model"] = "changed by a plugin"
        return [Section("Mine", f"<p>{len(runs)} runs in {workspace.name}</p>")]

    mine = SectionsPlugin(answer)
    data = page_data(report_html(StoreReader(store).scan(), catalog=catalog_with(mine=mine)))
    (runs, workspace), = mine.calls
    assert workspace == store.parent and {r["workflow"] for r in runs} == {"digits", "speech"}
    (section,) = data["plugin_sections"]["sections"]
    assert section == {"plugin": "mine", "id": "plugin-mine-1", "title": "Mine", "html": "<p>4 runs in workspace</p>"}
    assert "changed by a plugin" not in json.dumps(data["runs"]) and data["plugin_sections"]["warnings"] == []


@pytest.mark.parametrize("answer, words", [
    (lambda runs, ws: 1 / 0, "hook kernel_report_sections raised ZeroDivisionError: division by zero"),
    (lambda runs, ws: {"title": "x"}, "returned a dict, not a list of kernel.Section"),
    (lambda runs, ws: [Section("ok", "<p>ok</p>"), "<p>text</p>"], "a list holding a str, not only kernel.Section"),
    (lambda runs, ws: [Section("t", None)], "a Section whose title and html are not both text"),
])
def test_a_broken_section_plugin_is_a_warning_naming_it_and_the_rest_is_shown(store, answer, words):
    good = SectionsPlugin(lambda runs, ws: [Section("Good", "<p>good</p>")])
    catalog = catalog_with(bad=SectionsPlugin(answer), good=good)
    data = page_data(report_html(StoreReader(store).scan(), catalog=catalog))
    (warning,) = data["plugin_sections"]["warnings"]
    assert warning.startswith("plugin 'bad' (ktest-bad) is broken, its part of the page is left out: ") and words in warning
    assert [s["title"] for s in data["plugin_sections"]["sections"]] == ["Good"]  # the bad one gave nothing
    assert len(data["runs"]) == 4 and data["groups"] and catalog.plugins.infos["bad"].status == "broken"


def test_a_section_that_inlines_plotly_js_leaves_it_to_the_page(store):
    """A section may inline plotly.js to work on its own; the page already holds it: it is in the
    file once, and not run a second time over the page's charts. Other scripts are kept."""
    bundle = plotly_js_path().read_text()
    html = (f'<script>{bundle}</script><div id="c"></div><script>Plotly.newPlot("c", [])</script>'
            f'<script type="text/javascript">{bundle}</script><script src="x.js">{bundle}</script>')
    catalog = catalog_with(charts=SectionsPlugin(lambda runs, ws: [Section("Charts", html)]))
    page = report_html(StoreReader(store).scan(), catalog=catalog)
    assert page.count(bundle) == 1  # the page's own (the section's html travels as JSON text)
    (section,) = page_data(page)["plugin_sections"]["sections"]  # the script under a src is not the page's
    assert section["html"] == f'<div id="c"></div><script>Plotly.newPlot("c", [])</script><script src="x.js">{bundle}</script>'


def test_sections_are_placed_by_the_pages_code_in_a_place_of_their_own():
    assets = Path(__file__).resolve().parents[1] / "kernel" / "report" / "assets"
    assert '<div id="plugin-sections"></div>\n</main>' in (assets / "page.html").read_text()
    app = (assets / "app.js").read_text()
    assert "renderPluginSections();" in app and "live.nonce = S.nonce" in app
