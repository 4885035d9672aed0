"""The explanations in the report and the dashboard (hook ``kernel_report_sections``).

One section per workflow among the shown runs whose runs were explained (``kernel explain``): for
each method, a grid with a row per sample and a column per model, so that the same samples are
seen through every model, side by side. Under the grid, per model: the randomisation sanity check,
the mean infidelity and max-sensitivity, and (folded) the features each class leaned on most.

Everything comes from the files ``kernel explain`` writes, ``RUN_DIR/artifacts/explanations/<method>/``
(explanation.json and a picture per sample): no torch, no model. Those files may come from someone
else's run folder, so every text from them is escaped, a picture must be a plain file of a known
kind inside its folder, and HTML pictures are shown in a sandboxed frame (no script of theirs runs).
A damaged folder gives a line that says so, never an exception (which would take the plugin's part
off the page).

The dashboard asks every few seconds: a run without explanations costs one ``stat``, and a method's
folder is read again only when one of its files changes (modification time and size).
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kernel import Section

#: under a run's artifacts/: plugin_interpretability.explain.FOLDER, not imported (that module imports torch)
FOLDER = "explanations"
#: the media a picture may be, by file suffix: (kind, MIME type)
MEDIA = {".png": ("image", "image/png"), ".jpg": ("image", "image/jpeg"), ".jpeg": ("image", "image/jpeg"),
         ".wav": ("audio", "audio/wav"), ".ogg": ("audio", "audio/ogg"), ".flac": ("audio", "audio/flac"),
         ".mp3": ("audio", "audio/mpeg"), ".html": ("html", "text/html")}
#: the first bytes of each image format: a file named .png that is not one is said to be damaged
MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
#: an image larger than this is shrunk to :data:`SHRUNK_WIDTH` for the page, which holds every
#: picture inline (a spectrogram figure is ~100 KB as written, ~25 KB shrunk)
SHRINK_ABOVE_BYTES = 48 * 1024
#: the width a shrunk image gets, in pixels: twice the width it is shown at, sharp when enlarged
SHRUNK_WIDTH = 440
#: a picture still larger than this (or a sound, or HTML, larger) is left out, said why
MAX_PICTURE_BYTES = 512 * 1024
#: explanation.json files larger than this are not read (a real one is a few kilobytes)
MAX_JSON_BYTES = 4 * 1024 * 1024
#: top features shown per class and model in the summary
TOP_FEATURES = 5
#: read method folders kept, by folder: (its stamp, the Explanation)
_CACHE: dict = {}
_CACHE_SIZE = 256
_LOCK = threading.Lock()
#: the section's own layout (the page's styles apply otherwise); its class names are the plugin's
STYLE = ("<style>"
         ".interp-method{margin:8px 0 24px}"
         ".interp-method h3{margin:12px 0 4px}"
         ".interp-settings{color:#656d76;margin:0 0 8px}"
         ".interp-scroll{overflow-x:auto}"
         ".interp-grid{border-collapse:collapse}"
         ".interp-grid th,.interp-grid td{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top;"
         "text-align:center}"
         ".interp-grid th .interp-run{display:block;font-weight:normal;font-size:11px;color:#656d76}"
         ".interp-grid tbody th{text-align:left;white-space:nowrap}"
         # shown 220 px wide; a click (focus) shows it at its own size, a click elsewhere shrinks it again
         ".interp-cell img{display:block;margin:0 auto;width:220px;height:auto;cursor:zoom-in}"
         ".interp-cell img.interp-wide{width:440px}"
         ".interp-cell img:focus{width:auto;max-width:none;outline:2px solid #0969da;cursor:zoom-out}"
         ".interp-cell iframe{width:300px;height:150px;border:0}"
         ".interp-cell audio{width:220px}"
         ".interp-classes{font-size:12px;line-height:1.4}"
         ".interp-wrong{color:#cf222e;font-weight:bold}"
         ".interp-missing{color:#656d76;font-style:italic}"
         ".interp-passed{color:#1a7f37}"
         ".interp-failed{color:#fff;background:#cf222e;font-weight:bold;padding:0 4px;border-radius:3px}"
         ".interp-note{color:#656d76;font-style:italic}"
         ".interp-summary ol{margin:0;padding-left:18px;text-align:left}"
         "</style>")


def sections(runs, workspace) -> list[Section]:
    """A section per workflow among ``runs`` (run.json dicts) with explained runs, in the order the
    runs name the workflows; [] (after a stat per run) when no run was explained."""
    found = explained_runs(runs, Path(workspace))
    by_workflow: dict = {}
    for run, folders in found:
        by_workflow.setdefault(_text(run.get("workflow")) or "(no workflow)", []).append((run, folders))
    return [Section(f"Explanations: {workflow}", workflow_html(explained))
            for workflow, explained in by_workflow.items()]


# -- which runs, which folders ---------------------------------------------------------------------

def explained_runs(runs, workspace: Path) -> list[tuple[dict, dict]]:
    """``(run.json dict, {method: folder})`` for each run that has explanations, in the runs' order."""
    out, seen = [], set()
    for run in runs:
        folder = explanations_folder(run, workspace)
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        methods = method_folders(folder)
        if methods:
            out.append((run, methods))
    return out


def explanations_folder(run, workspace: Path) -> Path | None:
    """``<workspace>/runs/<id>/artifacts/explanations`` when it is a folder; None otherwise, and for
    an id that is not one plain folder name (a run.json could say ``../..``)."""
    run_id = run.get("id") if isinstance(run, dict) else None
    if not isinstance(run_id, str) or not _plain_name(run_id):
        return None
    folder = workspace / "runs" / run_id / "artifacts" / FOLDER
    return folder if folder.is_dir() else None


def method_folders(folder: Path) -> dict:
    """``{method: folder}`` of the method folders in ``folder``, without the ones ``kernel explain``
    is writing or replacing (their names begin with a dot)."""
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    except OSError:
        return {}
    return {e.name: Path(e.path) for e in entries}


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


# -- reading one method's folder ---------------------------------------------------------------------

@dataclass
class Picture:
    """A sample's picture ready for the page: ``kind`` "image", "audio" or "html" and its data URI
    (or, for HTML, its text); or ``problem``, why it cannot be shown."""

    kind: str = ""
    data: str = ""
    problem: str = ""
    wide: bool = False  # a strip (a text's tinted words): shown twice as wide, or its words are unreadable


@dataclass
class Explanation:
    """One run's explanation.json with one method, as the page uses it (``problem``: why it could
    not be read; the rest is then empty)."""

    folder: Path
    record: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)  # the record's sample dicts, each with its Picture under "_picture"
    problem: str = ""


def load_explanation(folder: Path) -> Explanation:
    """The explanation in ``folder``, read again only when one of its files changed."""
    stamp = folder_stamp(folder)
    with _LOCK:
        kept = _CACHE.get(folder)
        if kept is not None and kept[0] == stamp:
            return kept[1]
    explanation = read_explanation(folder)
    with _LOCK:
        if len(_CACHE) >= _CACHE_SIZE and folder not in _CACHE:
            _CACHE.pop(next(iter(_CACHE)))  # the oldest
        _CACHE[folder] = (stamp, explanation)
    return explanation


def folder_stamp(folder: Path) -> tuple:
    """The folder's files with their modification times and sizes: changes when any file does."""
    try:
        return tuple(sorted((e.name, s.st_mtime_ns, s.st_size) for e in os.scandir(folder)
                            for s in [e.stat(follow_symlinks=False)]))
    except OSError:
        return ()


def read_explanation(folder: Path) -> Explanation:
    try:
        record = read_record(folder / "explanation.json")
    except ValueError as exc:
        return Explanation(folder, problem=str(exc))
    samples = []
    for sample in record["samples"]:
        if isinstance(sample, dict) and _index(sample) is not None:
            samples.append({**sample, "_picture": read_picture(folder, sample.get("picture"))})
    return Explanation(folder, record, samples)


def read_record(path: Path) -> dict:
    """explanation.json as a dict with a list of samples; ValueError saying what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"explanation.json is {size // 1024} KB, too large to be one kernel explain wrote")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError("explanation.json is missing") from None
    except OSError as exc:
        raise ValueError(f"explanation.json cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"explanation.json is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"explanation.json holds a {type(record).__name__}, not an explanation")
    if not isinstance(record.get("samples"), list):
        raise ValueError("explanation.json has no list of samples")
    return record


def read_picture(folder: Path, name) -> Picture:
    """The picture file ``name`` of ``folder`` as a data URI (images, sounds) or text (HTML)."""
    if name is None:
        return Picture(problem="no picture (explained without rendering)")
    if not isinstance(name, str) or not _plain_name(name) or name.startswith("."):
        return Picture(problem=f"picture {_text(name)!r} is not a file name")
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in MEDIA:
        return Picture(problem=f"picture {name!r} is of a kind the page does not show")
    kind, mime = MEDIA[suffix]
    path = folder / name
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):  # a link could point anywhere: at a file not meant for the page
            return Picture(problem=f"picture {name!r} is not a plain file")
        data = path.read_bytes()
    except FileNotFoundError:
        return Picture(problem=f"picture {name!r} is missing")
    except OSError as exc:
        return Picture(problem=f"picture {name!r} cannot be read ({exc.strerror or exc})")
    if mime in MAGIC and not data.startswith(MAGIC[mime]):
        return Picture(problem=f"picture {name!r} is damaged (not a {suffix[1:].upper()} file)")
    if kind == "html" and len(data) <= MAX_PICTURE_BYTES:
        return Picture(kind, data.decode("utf-8", errors="replace"))
    wide = mime == "image/png" and is_strip(data)
    if kind == "image" and len(data) > SHRINK_ABOVE_BYTES:
        data, mime = shrunk(data) or (data, mime)
    if len(data) > MAX_PICTURE_BYTES:
        return Picture(problem=f"picture {name!r} is too large to put in the page ({len(data) // 1024} KB)")
    return Picture(kind, f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", wide=wide)


def is_strip(png: bytes) -> bool:
    """Whether a PNG is at least three times as wide as it is high (its IHDR header says so)."""
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return height > 0 and width >= 3 * height


def shrunk(data: bytes) -> tuple[bytes, str] | None:
    """A large image made at most :data:`SHRUNK_WIDTH` wide, as the smaller of a 256-colour PNG
    (crisp text) and a JPEG (smooth maps), with its MIME type; None when Pillow cannot read it or
    the result is no smaller. Pillow only here: most pictures are small and need none of it."""
    import io

    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((SHRUNK_WIDTH, SHRUNK_WIDTH * 4), Image.LANCZOS)
            rgb = image.convert("RGB")
        made = []
        for fmt, mime, picture, options in (("PNG", "image/png", rgb.quantize(256), {"optimize": True}),
                                            ("JPEG", "image/jpeg", rgb, {"quality": 85})):
            out = io.BytesIO()
            picture.save(out, format=fmt, **options)
            made.append((out.getvalue(), mime))
    except Exception:  # noqa: BLE001 - an image Pillow cannot handle is shown as written, or left out
        return None
    small = min(made, key=lambda m: len(m[0]))
    return small if len(small[0]) < len(data) else None


# -- the page ----------------------------------------------------------------------------------------

@dataclass
class Column:
    """A run's explanation with one method: a column of that method's grid."""

    run: dict
    explanation: Explanation

    @property
    def model(self) -> str:
        return _text(self.run.get("model")) or _text(self.explanation.record.get("model")) or self.run_id

    @property
    def run_id(self) -> str:
        return _text(self.run.get("id"))


def workflow_html(explained: list[tuple[dict, dict]]) -> str:
    """One workflow's section: a block per method, in name order."""
    methods = sorted({method for _, folders in explained for method in folders})
    parts = [STYLE]
    for method in methods:
        columns = [Column(run, load_explanation(folders[method])) for run, folders in explained if method in folders]
        parts.append(method_html(method, columns, [run for run, folders in explained if method not in folders]))
    return "\n".join(parts)


def method_html(method: str, columns: list[Column], without: list[dict]) -> str:
    damaged = [c for c in columns if c.explanation.problem]
    readable = [c for c in columns if not c.explanation.problem]
    parts = [f'<div class="interp-method" data-method="{_e(method)}"><h3>{_e(method)}</h3>']
    parts.extend(_note(f"{c.model} ({c.run_id}): {c.explanation.problem}; run `kernel explain` again "
                       f"to rewrite {c.explanation.folder}.") for c in damaged)
    if without:
        parts.append(_note("Not explained with this method: "
                           + ", ".join(_text(r.get("model")) or _text(r.get("id")) for r in without) + "."))
    if readable:
        parts.append(settings_html(readable))
        parts.append(f'<div class="interp-scroll"><table class="interp-grid">{grid_head(readable)}'
                     f'{grid_body(readable)}{grid_foot(readable)}</table></div>')
        parts.append(summary_html(readable))
    parts.append("</div>")
    return "\n".join(parts)


def settings_html(columns: list[Column]) -> str:
    """How the method was run: its parameters, layer, split and target; said per model when the
    models were explained differently (at different times, with other options)."""
    told = {c.run_id: settings_text(c.explanation.record) for c in columns}
    if len(set(told.values())) == 1:
        return f'<p class="interp-settings">{_e(next(iter(told.values())))}</p>'
    items = "".join(f"<li>{_e(c.model)}: {_e(told[c.run_id])}</li>" for c in columns)
    return ('<p class="interp-settings">The models were explained with different settings:</p>'
            f'<ul class="interp-settings">{items}</ul>')


def settings_text(record: dict) -> str:
    params = record.get("params") if isinstance(record.get("params"), dict) else {}
    shown = ", ".join(f"{_text(k)}={_value(v)}" for k, v in params.items())
    parts = [f"parameters: {shown}" if shown else "no parameters"]
    layer = record.get("layer")
    parts.append(f"layer {_text(layer)}" if layer else "on the input")
    if record.get("split") is not None:
        parts.append(f"samples of split {_text(record['split'])}")
    target = record.get("target")
    if target is not None:
        parts.append(f"explains the {target} class" if target in ("predicted", "true")
                     else f"explains class {_text(target)}")
    if record.get("checkpoint") is not None:
        parts.append(f"checkpoint {_text(record['checkpoint'])}")
    return "; ".join(parts)


def grid_head(columns: list[Column]) -> str:
    cells = "".join(f'<th data-run="{_e(c.run_id)}">{_e(c.model)}<span class="interp-run">{_e(c.run_id)}</span></th>'
                    for c in columns)
    return f"<thead><tr><th>sample</th>{cells}</tr></thead>"


def grid_body(columns: list[Column]) -> str:
    """A row per sample index any model was explained on, in the order they were first given."""
    by_index = [{_index(s): s for s in c.explanation.samples} for c in columns]
    indices = list(dict.fromkeys(i for samples in by_index for i in samples))
    rows = []
    for index in indices:
        given = [samples.get(index) for samples in by_index]
        true = next((s.get("true_text") for s in given if s and s.get("true_text") is not None), None)
        head = f"sample {index}" + (f"<br>true: {_e(true)}" if true is not None else "")
        cells = "".join(cell_html(s, c) for s, c in zip(given, columns))
        rows.append(f'<tr data-index="{index}"><th>{head}</th>{cells}</tr>')
    return f"<tbody>{''.join(rows)}</tbody>"


def cell_html(sample: dict | None, column: Column) -> str:
    run = _e(column.run_id)
    if sample is None:
        return f'<td class="interp-cell interp-missing" data-run="{run}">not explained</td>'
    picture = sample["_picture"]
    shown = media_html(picture, f"sample {_index(sample)}, {column.model}") if not picture.problem else \
        _note(picture.problem)
    return (f'<td class="interp-cell" data-run="{run}" title="{_e(sample_checks_text(sample))}">{shown}'
            f'<div class="interp-classes">{classes_html(sample)}</div></td>')


def media_html(picture: Picture, label: str) -> str:
    if picture.kind == "image":
        wide = ' class="interp-wide"' if picture.wide else ""
        return f'<img{wide} src="{picture.data}" alt="{_e(label)}" title="click to enlarge" tabindex="0">'
    if picture.kind == "audio":
        return f'<audio controls preload="none" src="{picture.data}" title="{_e(label)}"></audio>'
    # no allow-scripts: the frame shows the renderer's HTML and runs none of it
    return f'<iframe sandbox srcdoc="{_e(picture.data)}" title="{_e(label)}"></iframe>'


def classes_html(sample: dict) -> str:
    """true / predicted / explained under the picture; a wrong prediction stands out."""
    true, predicted = sample.get("true"), sample.get("predicted")
    wrong = isinstance(true, int) and isinstance(predicted, int) and true != predicted
    lines = [("true", sample.get("true_text"), False), ("predicted", sample.get("predicted_text"), wrong),
             ("explained", sample.get("explained_text"), False)]
    return "<br>".join(f'{what}: <span class="interp-wrong">{_e(text)}</span>' if flag else f"{what}: {_e(text)}"
                       for what, text, flag in lines if text is not None)


def sample_checks_text(sample: dict) -> str:
    parts = [f"{what} {_number(sample.get(key))}" for key, what in
             (("infidelity", "infidelity"), ("sensitivity", "max-sensitivity"),
              ("sanity", "rank correlation with a randomised model"))
             if _finite(sample.get(key))]
    return "; ".join(parts)


def grid_foot(columns: list[Column]) -> str:
    """Per model: the sanity check and the mean faithfulness measures."""
    sanity = "".join(f'<td data-run="{_e(c.run_id)}">{sanity_html(c.explanation.record.get("sanity"))}</td>'
                     for c in columns)
    rows = [f'<tr class="interp-sanity"><th>sanity check<span class="interp-run">rank correlation with a<br>'
            f'randomised model</span></th>{sanity}</tr>']
    agreement = [c.explanation.record.get("agreement") for c in columns]
    if any(isinstance(a, dict) and a for a in agreement):
        # how alike each model's attributions are to the others' on these samples (kernel explain RUN1 RUN2)
        names = {c.run_id: c.model for c in columns}
        cells = "".join(f"<td>{agreement_html(a, names)}</td>" for a in agreement)
        rows.append(f'<tr class="interp-agreement"><th>alike other models<span class="interp-run">mean rank '
                    f'correlation,<br>same samples</span></th>{cells}</tr>')
    for key, what in (("infidelity", "infidelity (mean)"), ("sensitivity", "max-sensitivity (mean)")):
        means = [_mean(s.get(key) for s in c.explanation.samples) for c in columns]
        if any(m is not None for m in means):
            cells = "".join(f"<td>{_number(m) if m is not None else '-'}</td>" for m in means)
            rows.append(f'<tr class="interp-{key}"><th>{what}</th>{cells}</tr>')
    return f"<tfoot>{''.join(rows)}</tfoot>"


def agreement_html(agreement, names: dict) -> str:
    """``model ρ`` per other run this one was explained with and that the grid shows."""
    if not isinstance(agreement, dict):
        return "-"
    shown = [f"{_e(names[run])}: {_e(_number(rho))}" for run, rho in agreement.items()
             if run in names and _finite(rho)]
    return "<br>".join(shown) or "-"


def sanity_html(sanity) -> str:
    """The randomisation check, short (the full sentence in its tooltip): an explanation that
    hardly changes when the model's weights are randomised does not describe what the model learned."""
    if not isinstance(sanity, dict):
        return '<span class="interp-missing">not checked</span>'
    rho, threshold, passed = sanity.get("rank_correlation"), sanity.get("threshold"), sanity.get("passed")
    shown = f"ρ {_number(rho)}" if _finite(rho) else "no correlation"
    if _finite(threshold):
        shown += f" (passes below {_number(threshold)})"
    verdict = {True: ("interp-passed", "passed", "the attributions change when the model's weights are randomised"),
               False: ("interp-failed", "FAILED", "the attributions barely change when the model's weights are "
                                                  "randomised: they do not show what the model learned")}
    css, word, meaning = verdict.get(passed, ("interp-missing", "undecided", "no sample could be compared"))
    return f'<span class="{css}" title="{_e(meaning)}">{word}</span><br>{_e(shown)}'


def summary_html(columns: list[Column]) -> str:
    """The features each class leaned on most, per model (a row per class, a column per model),
    folded: it is long, and the grid is what one looks at first."""
    summaries = [c.explanation.record.get("summary") for c in columns]
    summaries = [s if isinstance(s, dict) else {} for s in summaries]
    classes = list(dict.fromkeys(k for s in summaries for k in s))
    if not classes:
        return ""
    head = "".join(f"<th>{_e(c.model)}</th>" for c in columns)
    rows = []
    for name in classes:
        cells = "".join(f"<td>{top_features_html(s.get(name))}</td>" for s in summaries)
        rows.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
    return (f'<details class="interp-summary"><summary>Top features per class (mean |attribution| over the '
            f'explained samples of that class)</summary><div class="interp-scroll"><table class="interp-grid">'
            f"<thead><tr><th>class</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>")


def top_features_html(entry) -> str:
    if not isinstance(entry, dict):
        return '<span class="interp-missing">-</span>'
    top = entry.get("top") if isinstance(entry.get("top"), list) else []
    items = "".join(f"<li>{_e(t.get('feature'))} ({_e(_number(t.get('value')))})</li>"
                    for t in top[:TOP_FEATURES] if isinstance(t, dict))
    count = entry.get("samples")
    samples = f"{_e(count)} sample{'s' if count != 1 else ''}" if isinstance(count, int) else ""
    return f"{samples}<ol>{items}</ol>" if items else samples


# -- small helpers -----------------------------------------------------------------------------------

def _text(value) -> str:
    return "" if value is None else str(value)


def _e(value) -> str:
    """Text from a file, made safe to place in HTML (element text or a quoted attribute)."""
    return html.escape(_text(value), quote=True)


def _note(text: str) -> str:
    return f'<p class="interp-note">{_e(text)}</p>'


def _index(sample: dict):
    index = sample.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values):
    known = [float(v) for v in values if _finite(v)]
    return sum(known) / len(known) if known else None


def _number(value) -> str:
    """A measure as text: 4 significant digits, or whatever else the file holds there."""
    return f"{value:.4g}" if _finite(value) else _text(value)


def _value(value) -> str:
    """A parameter's value as the workflow TOML would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return _text(value)
