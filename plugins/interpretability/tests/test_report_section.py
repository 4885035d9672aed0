"""The explanations section of the report and the dashboard (``plugin_interpretability.report_section``),
drawn from folders the real ``kernel explain`` wrote for two real (one-epoch) models: one grid per
method with the same samples in rows and the models in columns, pictures inline, the sanity check
per model; damaged or hostile files said in words and escaped, never raised; read again only when
a file changes; no torch imported."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from plugin_interpretability.report_section import SHRINK_ABOVE_BYTES, sections

pytestmark = pytest.mark.slow  # the shared workspace trains and explains two models (about half a minute)

METHOD = "interpret.saliency"
HOSTILE = "<img src=x onerror=alert(1)>"


# -- helpers ------------------------------------------------------------------------------------------
def run_infos(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "runs").glob("*/run.json"))]


def explanation_path(home: Path, run_id: str, method: str = METHOD) -> Path:
    return home / "runs" / run_id / "artifacts" / "explanations" / method / "explanation.json"


def copy_explained(src: Path, dst: Path) -> Path:
    """The runs' run.json and explanations (no checkpoints): a workspace these tests may damage."""
    for info in run_infos(src):
        for part in ("run.json", "artifacts/explanations"):
            source, target = src / "runs" / info["id"] / part, dst / "runs" / info["id"] / part
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    return dst


def rewrite(path: Path, change) -> dict:
    """``change(record)`` applied to an explanation.json, its stamp moved on (a rewrite within the clock's step)."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))
    bump(path)
    return record


def bump(path: Path):
    later = time.time_ns() + 10**9
    os.utime(path, ns=(later, later))


class Grids(HTMLParser):
    """The section's grids: ``{method: {sample index: {run id: cell}}}``, a cell being
    ``{"img": src or None, "text": its text}``; and each method's column headers (run ids)."""

    def __init__(self, text: str):
        super().__init__()
        self.grids, self.columns = {}, {}
        self.method = self.row = self.cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "data-method" in attrs:
            self.method = attrs["data-method"]
            self.grids.setdefault(self.method, {})
            self.columns.setdefault(self.method, [])
        elif tag == "th" and "data-run" in attrs and self.method:
            self.columns[self.method].append(attrs["data-run"])
        elif tag == "tr" and "data-index" in attrs:
            self.row = self.grids[self.method].setdefault(int(attrs["data-index"]), {})
        elif tag == "td" and "data-run" in attrs and self.row is not None:
            self.cell = self.row[attrs["data-run"]] = {"img": None, "text": ""}
        elif tag == "img" and self.cell is not None:
            self.cell["img"] = attrs["src"]

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


@pytest.fixture(scope="module")
def home(explained_workspace) -> Path:
    return explained_workspace


@pytest.fixture
def copied(home, tmp_path) -> Path:
    return copy_explained(home, tmp_path / "copy")


# -- a real explanation ---------------------------------------------------------------------------------
def test_one_section_with_the_models_as_columns_and_the_same_samples_as_rows(home):
    infos = run_infos(home)
    (section,) = sections(infos, home)
    assert section.title == "Explanations: two-cnns"
    parsed = Grids(section.html)
    assert list(parsed.grids) == [METHOD]
    ids = [info["id"] for info in infos]
    assert sorted(parsed.columns[METHOD]) == sorted(ids)
    records = {i: json.loads(explanation_path(home, i).read_text()) for i in ids}
    indices = [[s["index"] for s in records[i]["samples"]] for i in ids]
    assert indices[0] == indices[1] and len(indices[0]) == 4
    grid = parsed.grids[METHOD]
    assert list(grid) == indices[0]  # a row per sample, in the order they were explained
    for index, row in grid.items():
        assert sorted(row) == sorted(ids)
        for run_id, cell in row.items():
            sample = next(s for s in records[run_id]["samples"] if s["index"] == index)
            assert cell["img"].startswith("data:image/png;base64,")
            assert f"true: {sample['true_text']}" in cell["text"]
            assert f"predicted: {sample['predicted_text']}" in cell["text"]
            assert f"explained: {sample['explained_text']}" in cell["text"]
    for info in infos:
        assert f">{info['model']}<" in section.html  # the model names head the columns
    assert section.html.count('class="interp-passed"') + section.html.count('class="interp-failed"') == 2
    assert "infidelity (mean)" in section.html and "max-sensitivity (mean)" in section.html
    # explained together, each model's column says how alike the other's attributions are
    (one, other) = ids
    rho = records[one]["agreement"][other]
    assert rho == records[other]["agreement"][one] and "alike other models" in section.html
    assert f"{records[other]['model']}: {rho:.4g}" in section.html
    assert "parameters: abs=true; on the input" in section.html
    assert "Top features per class" in section.html and "region row" in section.html
    assert "http://" not in section.html and "https://" not in section.html  # nothing fetched


def test_the_pictures_are_the_files_kernel_explain_wrote(home):
    import base64

    info = run_infos(home)[0]
    record = json.loads(explanation_path(home, info["id"]).read_text())
    (section,) = sections([info], home)
    grid = Grids(section.html).grids[METHOD]
    for sample in record["samples"]:
        picture = explanation_path(home, info["id"]).parent / sample["picture"]
        src = grid[sample["index"]][info["id"]]["img"]
        assert base64.b64decode(src.split(",", 1)[1]) == picture.read_bytes()  # small: embedded as written


def test_the_report_page_holds_the_section(home, tmp_path, kernel_cli):
    page = tmp_path / "page.html"
    proc = kernel_cli("report", "--workflow", "two-cnns", "-o", page, home=home)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    data = json.loads(text.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    given = data["plugin_sections"]
    assert given["warnings"] == []
    (section,) = [s for s in given["sections"] if s["plugin"] == "interpret"]
    assert section["title"] == "Explanations: two-cnns"
    assert len(Grids(section["html"]).grids[METHOD]) == 4


def test_drawing_imports_no_torch(home):
    code = ("import json, sys, pathlib\n"
            "from plugin_interpretability.report_section import sections\n"
            "home = pathlib.Path(sys.argv[1])\n"
            "runs = [json.loads(p.read_text()) for p in home.glob('runs/*/run.json')]\n"
            "assert len(sections(runs, home)) == 1\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'captum', 'numpy')))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_runs_without_explanations_give_nothing_quickly(home, tmp_path):
    many = [{"id": f"other-run-{i}", "workflow": "other", "model": "m"} for i in range(500)]
    strange = [{"id": "../.."}, {"id": None}, {}, "not a dict", {"id": "a/b"}]
    start = time.perf_counter()
    assert sections(many + strange, home) == []
    assert sections([], tmp_path) == []
    assert time.perf_counter() - start < 0.5  # a stat per run


def test_workflows_have_a_section_each(copied):
    infos = run_infos(copied)
    infos[1] = {**infos[1], "workflow": "another"}
    assert [s.title for s in sections(infos, copied)] == ["Explanations: two-cnns", "Explanations: another"]


# -- methods, and samples explained by one model only -------------------------------------------------
def test_methods_come_in_name_order_and_a_missing_one_is_said(copied):
    first, second = run_infos(copied)
    source = explanation_path(copied, first["id"]).parent
    shutil.copytree(source, source.with_name("interpret.grad_cam"))
    rewrite(source.with_name("interpret.grad_cam") / "explanation.json",
            lambda r: r.update(method="interpret.grad_cam", layer="features.4.0", params={"relu": True}))
    (section,) = sections([first, second], copied)
    parsed = Grids(section.html)
    assert list(parsed.grids) == ["interpret.grad_cam", METHOD]
    assert parsed.columns["interpret.grad_cam"] == [first["id"]]
    assert f"Not explained with this method: {second['model']}." in section.html
    assert "parameters: relu=true; layer features.4.0" in section.html


def test_a_sample_one_model_did_not_explain_shows_an_empty_cell(copied):
    first, second = run_infos(copied)
    dropped = rewrite(explanation_path(copied, second["id"]), lambda r: r.update(samples=r["samples"][1:]))
    gone = json.loads(explanation_path(copied, first["id"]).read_text())["samples"][0]["index"]
    assert gone not in [s["index"] for s in dropped["samples"]]
    grid = Grids(sections([first, second], copied)[0].html).grids[METHOD]
    assert len(grid) == 4
    assert grid[gone][second["id"]] == {"img": None, "text": "not explained"}
    assert grid[gone][first["id"]]["img"].startswith("data:image/png")


def test_models_explained_with_other_settings_say_so(copied):
    first, second = run_infos(copied)
    rewrite(explanation_path(copied, second["id"]), lambda r: r.update(params={"abs": False}))
    html = sections([first, second], copied)[0].html
    assert "The models were explained with different settings:" in html
    assert f"<li>{second['model']}: parameters: abs=false;" in html


def test_a_failed_sanity_check_is_flagged(copied):
    first, second = run_infos(copied)
    rewrite(explanation_path(copied, first["id"]),
            lambda r: r.update(sanity={"rank_correlation": 0.93, "threshold": 0.5, "passed": False}))
    rewrite(explanation_path(copied, second["id"]), lambda r: r.update(sanity=None))
    html = sections([first, second], copied)[0].html
    assert '<span class="interp-failed"' in html and ">FAILED</span><br>ρ 0.93 (passes below 0.5)" in html
    assert "not checked" in html


# -- what cannot be shown -----------------------------------------------------------------------------
def damage_json(folder: Path, record: dict):
    (folder / "explanation.json").write_bytes(b'{"method": "interpret.saliency", "sampl')


def damage_samples(folder: Path, record: dict):
    (folder / "explanation.json").write_text(json.dumps({**record, "samples": {"0": {}}}))


def remove_json(folder: Path, record: dict):
    (folder / "explanation.json").unlink()


@pytest.mark.parametrize("damage, words", [
    (damage_json, "explanation.json is not valid JSON"),
    (damage_samples, "explanation.json has no list of samples"),
    (remove_json, "explanation.json is missing"),
])
def test_a_damaged_explanation_is_a_note_and_the_other_model_is_shown(copied, damage, words):
    first, second = run_infos(copied)
    folder = explanation_path(copied, first["id"]).parent
    damage(folder, json.loads((folder / "explanation.json").read_text()))
    (section,) = sections([first, second], copied)
    assert words in section.html and str(folder) in section.html
    parsed = Grids(section.html)
    assert parsed.columns[METHOD] == [second["id"]]
    assert all(row[second["id"]]["img"] for row in parsed.grids[METHOD].values())


def break_picture(folder: Path, name: str):
    (folder / name).write_bytes(b"not a picture")


def remove_picture(folder: Path, name: str):
    (folder / name).unlink()


def link_picture(folder: Path, name: str):
    (folder / name).unlink()
    (folder / name).symlink_to(folder.parents[2] / "run.json")  # a link may point at a file not meant for a page


def escape_folder(folder: Path, name: str):
    rewrite(folder / "explanation.json",
            lambda r: r["samples"][0].update(picture="../../../run.json"))


@pytest.mark.parametrize("damage, words", [
    (break_picture, "is damaged (not a PNG file)"),
    (remove_picture, "is missing"),
    (link_picture, "is not a plain file"),
    (escape_folder, "is not a file name"),
])
def test_a_picture_that_cannot_be_shown_is_a_note_in_its_cell(copied, damage, words):
    (info,) = run_infos(copied)[:1]
    folder = explanation_path(copied, info["id"]).parent
    sample = json.loads((folder / "explanation.json").read_text())["samples"][0]
    damage(folder, sample["picture"])
    grid = Grids(sections([info], copied)[0].html).grids[METHOD]
    cell = grid[sample["index"]][info["id"]]
    assert cell["img"] is None and words in cell["text"]
    assert f"true: {sample['true_text']}" in cell["text"]  # the classes are still told
    assert sum(1 for row in grid.values() if row[info["id"]]["img"]) == 3


def test_a_large_picture_is_made_small(copied):
    from PIL import Image
    import random

    (info,) = run_infos(copied)[:1]
    folder = explanation_path(copied, info["id"]).parent
    sample = json.loads((folder / "explanation.json").read_text())["samples"][0]
    rng = random.Random(0)
    noise = Image.frombytes("RGB", (1200, 900), bytes(rng.getrandbits(8) for _ in range(1200 * 900 * 3)))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 20 * SHRINK_ABOVE_BYTES
    (folder / sample["picture"]).write_bytes(out.getvalue())
    cell = Grids(sections([info], copied)[0].html).grids[METHOD][sample["index"]][info["id"]]
    src = cell["img"] or ""
    assert src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), cell
    assert len(src) < len(out.getvalue()) / 4


# -- text from the files is untrusted ------------------------------------------------------------------
def make_hostile(home: Path) -> dict:
    """A run whose id, model, class names, features, parameters and picture carry markup; returns its run.json."""
    info = run_infos(home)[0]
    old, new = home / "runs" / info["id"], home / "runs" / HOSTILE
    old.rename(new)
    info.update(id=HOSTILE, model=HOSTILE, workflow=HOSTILE)
    (new / "run.json").write_text(json.dumps(info))
    folder = new / "artifacts" / "explanations" / METHOD

    def change(record):
        record["params"] = {HOSTILE: "</script><script>alert(2)</script>"}
        record["layer"] = HOSTILE
        for sample in record["samples"]:
            sample.update(true_text=HOSTILE, predicted_text=HOSTILE, explained_text=HOSTILE)
        record["samples"][0]["picture"] = "0.html"
        record["summary"] = {HOSTILE: {"samples": 1, "top": [{"feature": HOSTILE, "value": HOSTILE}]}}
        record["sanity"] = {"rank_correlation": HOSTILE, "threshold": HOSTILE, "passed": HOSTILE}
    rewrite(folder / "explanation.json", change)
    (folder / "0.html").write_text(f'<p>words</p><script>alert(3)</script>{HOSTILE}')
    shutil.copytree(folder, folder.with_name(HOSTILE))  # a method folder named with markup
    return info


def test_text_from_the_files_cannot_inject_markup(copied):
    info = make_hostile(copied)
    (section,) = sections([info], copied)
    assert section.title == f"Explanations: {HOSTILE}"  # the page places titles as text
    assert HOSTILE not in section.html and "<script" not in section.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in section.html
    # the HTML picture: in a frame that runs no script (sandbox without allow-scripts), escaped into srcdoc
    assert '<iframe sandbox srcdoc="&lt;p&gt;words&lt;/p&gt;&lt;script&gt;' in section.html
    parsed = Grids(section.html)
    assert set(parsed.grids) == {METHOD, HOSTILE}  # the parser reads back the original text
    assert parsed.columns[METHOD] == [HOSTILE]


# -- the dashboard asks often --------------------------------------------------------------------------
def test_an_unchanged_folder_is_not_read_again_and_a_rewritten_one_is(copied):
    first, _ = run_infos(copied)
    before = sections([first], copied)
    start = time.perf_counter()
    for _ in range(20):
        assert sections([first], copied) == before
    assert time.perf_counter() - start < 0.5
    rewrite(explanation_path(copied, first["id"]),
            lambda r: r["samples"][0].update(predicted_text="rewritten (99%)"))
    assert "predicted: rewritten (99%)" in sections([first], copied)[0].html


def test_a_removed_picture_is_noticed_without_a_new_explanation_json(copied):
    first, _ = run_infos(copied)
    sections([first], copied)
    folder = explanation_path(copied, first["id"]).parent
    sample = json.loads((folder / "explanation.json").read_text())["samples"][1]
    (folder / sample["picture"]).unlink()
    cell = Grids(sections([first], copied)[0].html).grids[METHOD][sample["index"]][first["id"]]
    assert "is missing" in cell["text"]


def test_a_strip_of_words_is_shown_wider_than_a_square_picture():
    from PIL import Image

    from plugin_interpretability.report_section import is_strip

    def png(width, height):
        out = io.BytesIO()
        Image.new("RGB", (width, height), "white").save(out, format="PNG")
        return out.getvalue()

    assert is_strip(png(640, 90)) and not is_strip(png(320, 320)) and not is_strip(png(200, 100))
