"""Bad input through the real command line (`python -m kernel.cli run FILE`): one clear line naming the
file and the row, exit code 2, no traceback, nothing in the run store; or, where the user chose to
skip bad rows, a count of them and a run that completes."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from textfiles import rows

WORKFLOW = """
name = "bad-text"
seed = 0
[dataset]
use = "{use}"
{dataset}
transforms = [{{ use = "text.basic_english" }}, {{ use = "text.vocab"{vocab} }}]
[[models]]
use = "text.embedding_bag"
[trainer]
epochs = 1
batch_size = 8
tensorboard = false
progress = false
"""


def _csv_bytes(records) -> bytes:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([("text", "label"), *records])
    return out.getvalue().encode("utf-8")


GOOD = _csv_bytes(rows(2))  # 24 good rows after the header: lines 2 to 25
# each bad row is appended after the good ones, so it is on line 26
EMPTY = b'"",pos\n'
NOT_UTF8 = b'"caf\xe9 au lait, latin-1 bytes",pos\n'
RAGGED = b'"a great film",pos,unexpected third field\n'


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _workflow(tmp_path, data_file: Path, use="text.csv", dataset="", vocab=""):
    where = "root" if use == "text.folder" else "path"
    wf = tmp_path / "wf.toml"
    wf.write_text(WORKFLOW.format(use=use, dataset=f'{where} = "{data_file}"\n{dataset}', vocab=vocab),
                  encoding="utf-8")
    return wf


def _jsonl(tmp_path):
    lines = [json.dumps({"text": t, "label": y}) for t, y in rows(2)]
    lines.insert(4, '{"text": "a great film", "label": ')  # line 5: cut short
    return _write(tmp_path, "reviews.jsonl", ("\n".join(lines) + "\n").encode())


def _empty_label(tmp_path):
    records = rows(2)
    records[7] = (records[7][0], "")  # line 9: the header is line 1
    return _write(tmp_path, "reviews.csv", _csv_bytes(records))


def _folder_with_an_empty_file(tmp_path):
    root = tmp_path / "reviews"
    for i, (text, label) in enumerate(rows()):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i + 10}.txt").write_text(text, encoding="utf-8")
    (root / "neg" / "3.txt").write_text("  \n", encoding="utf-8")
    return root


# (id, file maker -> path, dataset lines, vocab settings, words the one line must hold)
CASES = [
    ("empty text", lambda p: _write(p, "reviews.csv", GOOD + EMPTY), "", "",
     ["reviews.csv line 26: the text is empty", 'on_bad = "skip"']),
    ("non-UTF-8 bytes", lambda p: _write(p, "reviews.csv", GOOD + NOT_UTF8), "", "",
     ["reviews.csv line 26: byte 0xe9 is not valid utf-8 text", 'encoding = "latin-1"', 'on_bad = "skip"']),
    ("a label column that does not exist", lambda p: _write(p, "reviews.csv", GOOD), 'label_column = "sentiment"', "",
     ["reviews.csv has no column 'sentiment' (label_column)", "its columns are: text, label"]),
    ("a CSV with ragged rows", lambda p: _write(p, "reviews.csv", GOOD + RAGGED), "", "",
     ["reviews.csv line 26: 3 fields, but the header has 2", 'on_bad = "skip"']),
    ("a line that is not JSON", _jsonl, "", "",
     ["reviews.jsonl line 5: not JSON", 'on_bad = "skip"']),
    ("a vocabulary with nothing above min_freq", lambda p: _write(p, "reviews.csv", GOOD), "", ", min_freq = 50",
     ["text.vocab", "no token occurs at least min_freq=50 times", "reviews.csv", "lower min_freq to"]),
    ("an on_bad that is neither error nor skip", lambda p: _write(p, "reviews.csv", GOOD + EMPTY),
     'on_bad = "ignore"', "", ["on_bad must be 'error' or 'skip', not 'ignore'"]),
    ("an empty label", _empty_label, "", "", ["reviews.csv line 9: the label is empty", 'on_bad = "skip"']),
    ("an empty .txt file", _folder_with_an_empty_file, "", "", ["reviews file neg/3.txt: the text is empty"]),
]
# the row of docs/text.md's "Bad input" table that shows each case's line
DOCUMENTED = {
    "empty text": "an empty text",
    "non-UTF-8 bytes": "bytes that are not valid in the encoding",
    "a CSV with ragged rows": "a row with the wrong number of fields",
    "an empty label": "an empty label",
    "a line that is not JSON": "a JSON Lines line that is not JSON",
    "a label column that does not exist": "a column that does not exist",
    "an empty .txt file": "an empty or undecodable `.txt` file (`text.folder`, `text.imdb`)",
    "a vocabulary with nothing above min_freq": "a vocabulary with nothing at `min_freq`",
}
DOC = Path(__file__).resolve().parents[3] / "docs" / "text.md"


def _documented_lines() -> dict[str, str]:
    """{input: the line shown} from the table under "## Bad input" in docs/text.md."""
    section = DOC.read_text(encoding="utf-8").split("## Bad input", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| (.+?) \| `(.+)` \|$", section, re.M))


def _shows(documented: str, line: str) -> bool:
    """Whether a line is what the docs show: the same text, where "..." stands for any text."""
    parts = re.split(r" ?\.\.\. ?", documented)
    return re.fullmatch(".*".join(map(re.escape, parts)), line) is not None


def test_the_docs_show_a_line_for_each_of_these_cases():
    assert set(_documented_lines()) == set(DOCUMENTED.values())


def _runs(workspace: Path) -> list[Path]:
    store = workspace / "runs"
    return sorted(store.rglob("run.json")) if store.is_dir() else []


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_exit_code_2_and_no_run(case, tmp_path, cli, workspace):
    name, make, dataset, vocab, words = case
    (workspace / "data").mkdir()
    data_file = make(workspace / "data")
    use = "text.folder" if data_file.is_dir() else "text.jsonl" if data_file.suffix == ".jsonl" else "text.csv"
    proc = cli("run", _workflow(tmp_path, data_file, use, dataset, vocab))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    # setup progress ("kernel: building dataset ...") may come first; the error is one line, the last
    lines = [line for line in proc.stderr.splitlines() if line.startswith("kernel: error")]
    assert len(lines) == 1 and proc.stderr.strip().splitlines()[-1] == lines[0], proc.stderr
    assert str(tmp_path) in lines[0] or "on_bad must be" in lines[0]  # the file, with its folder
    for word in words:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"
    if name in DOCUMENTED:  # the docs show this line, with the file where they put it: data/ in the workspace
        shown = _documented_lines()[DOCUMENTED[name]]
        assert _shows(shown, lines[0].replace(str(workspace) + os.sep, "")), (shown, lines[0])
    assert _runs(workspace) == []  # nothing half-written in the run store


def test_bad_rows_skipped_and_counted_when_the_user_chose_to(tmp_path, cli, workspace):
    data_file = _write(tmp_path, "reviews.csv", GOOD + EMPTY + NOT_UTF8 + RAGGED)
    proc = cli("run", "--json", _workflow(tmp_path, data_file, dataset='on_bad = "skip"'))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"text.csv: skipped 3 bad row(s) of {data_file} (first, line 26: the text is empty)" in proc.stderr
    out = json.loads(proc.stdout)
    run, = out["runs"] if isinstance(out, dict) else out
    assert run["status"] == "completed" and run["epochs_done"] == 1
    saved = json.loads(_runs(workspace)[0].read_text())
    assert saved["status"] == "completed"


def test_a_dry_run_shows_the_plan_with_the_vocabulary(tmp_path, cli):
    data_file = _write(tmp_path, "reviews.csv", GOOD)
    proc = cli("run", "--dry-run", "--json", _workflow(tmp_path, data_file))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["classes"] == ["neg", "pos"]
    model, = plan["models"]
    assert "error" not in model and model["output"] == "(2, 2) float32", model
