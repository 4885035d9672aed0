"""Bad input through the real command line (`python -m kernel.cli run FILE`): one clear line naming the
file and the row, exit code 2, no traceback, nothing in the run store; or, where the user chose to
skip bad rows, a count of them and a run that completes."""
from __future__ import annotations

import json
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
    wf = tmp_path / "wf.toml"
    wf.write_text(WORKFLOW.format(use=use, dataset=f'path = "{data_file}"\n{dataset}', vocab=vocab), encoding="utf-8")
    return wf


def _jsonl(tmp_path):
    lines = [json.dumps({"text": t, "label": y}) for t, y in rows(2)]
    lines.insert(4, '{"text": "a great film", "label": ')  # line 5: cut short
    return _write(tmp_path, "reviews.jsonl", ("\n".join(lines) + "\n").encode())


# (id, file maker -> path, dataset lines, vocab settings, words the one line must hold)
CASES = [
    ("empty text", lambda p: _write(p, "reviews.csv", GOOD + EMPTY), "", "",
     ["reviews.csv line 26: the text is empty", 'on_bad_row = "skip"']),
    ("non-UTF-8 bytes", lambda p: _write(p, "reviews.csv", GOOD + NOT_UTF8), "", "",
     ["reviews.csv line 26: byte 0xe9 is not valid utf-8 text", 'encoding = "latin-1"', 'on_bad_row = "skip"']),
    ("a label column that does not exist", lambda p: _write(p, "reviews.csv", GOOD), 'label_column = "sentiment"', "",
     ["reviews.csv has no column 'sentiment' (label_column)", "its columns are: text, label"]),
    ("a CSV with ragged rows", lambda p: _write(p, "reviews.csv", GOOD + RAGGED), "", "",
     ["reviews.csv line 26: 3 fields, but the header has 2", 'on_bad_row = "skip"']),
    ("a line that is not JSON", _jsonl, "", "",
     ["reviews.jsonl line 5: not JSON", 'on_bad_row = "skip"']),
    ("a vocabulary with nothing above min_freq", lambda p: _write(p, "reviews.csv", GOOD), "", ", min_freq = 50",
     ["text.vocab", "no token occurs at least min_freq=50 times", "reviews.csv", "lower min_freq to"]),
    ("an on_bad_row that is neither error nor skip", lambda p: _write(p, "reviews.csv", GOOD + EMPTY),
     'on_bad_row = "ignore"', "", ["on_bad_row must be 'error' or 'skip', not 'ignore'"]),
]


def _runs(workspace: Path) -> list[Path]:
    store = workspace / "runs"
    return sorted(store.rglob("run.json")) if store.is_dir() else []


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_exit_code_2_and_no_run(case, tmp_path, cli, workspace):
    _, make, dataset, vocab, words = case
    data_file = make(tmp_path)
    use = "text.jsonl" if data_file.suffix == ".jsonl" else "text.csv"
    proc = cli("run", _workflow(tmp_path, data_file, use, dataset, vocab))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kernel: error: "), proc.stderr
    assert str(tmp_path) in lines[0] or "on_bad_row must be" in lines[0]  # the file, with its folder
    for word in words:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"
    assert _runs(workspace) == []  # nothing half-written in the run store


def test_bad_rows_skipped_and_counted_when_the_user_chose_to(tmp_path, cli, workspace):
    data_file = _write(tmp_path, "reviews.csv", GOOD + EMPTY + NOT_UTF8 + RAGGED)
    proc = cli("run", "--json", _workflow(tmp_path, data_file, dataset='on_bad_row = "skip"'))
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
