"""The run store: atomic run.json, metrics that survive a cut line, a SQLite index that 4 writer
processes share without losing a run, and that `kernel runs --reindex` (or a missing file) rebuilds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from kernel.store import Run, RunStore, read_jsonl

WRITER = textwrap.dedent('''
    import sys
    from kernel.store import RunStore
    store = RunStore(sys.argv[1])
    for i in range(int(sys.argv[3])):
        run = store.create("concurrent", f"writer{sys.argv[2]}", model_index=i, monitor="valid/accuracy",
                           fingerprint="f", epochs=3)
        run.set_status("running")
        for epoch in range(1, 4):
            run.log({"epoch": epoch, "valid/accuracy": epoch / 10})
            run.update(epochs_done=epoch, best={"epoch": epoch, "valid/accuracy": epoch / 10})
        run.set_status("completed")
''')


def test_four_writer_processes_lose_nothing(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(w), "8"]) for w in range(4)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    store = RunStore(tmp_path)
    runs = store.list()
    assert len(runs) == 32 and len({r["id"] for r in runs}) == 32
    assert {r["status"] for r in runs} == {"completed"}
    assert all(r["best"]["valid/accuracy"] == 0.3 and r["epochs_done"] == 3 for r in runs)
    for r in runs:
        assert [row["epoch"] for row in Run.open(store.root / r["id"]).metrics()] == [1, 2, 3]
    import sqlite3

    con = sqlite3.connect(store.index_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*), MIN(best_value), MAX(epochs_done) FROM runs").fetchone() == (32, 0.3, 3)


def test_reindex_restores_a_deleted_index(cli, workspace):
    store = RunStore(workspace)
    for model in ("a", "b", "c"):
        run = store.create("wf", model, monitor="valid/loss", fingerprint="x")
        run.update(best={"valid/loss": 0.5}, epochs_done=2)
    store.index_path.unlink()
    for suffix in ("-wal", "-shm"):
        (store.root / f"index.sqlite{suffix}").unlink(missing_ok=True)
    out = cli("runs", "--reindex", "--json")
    assert out.returncode == 0, out.stderr
    assert sorted(r["model"] for r in json.loads(out.stdout)) == ["a", "b", "c"]
    assert "indexed 3 run(s)" in out.stderr
    # an index deleted behind the store's back comes back on the next listing too
    store.index_path.unlink()
    assert len(RunStore(workspace).list()) == 3


def test_runs_filters_and_table(cli, workspace):
    store = RunStore(workspace)
    store.create("one", "mlp").set_status("completed")
    store.create("two", "linear").set_status("failed", "ValueError: boom")
    table = cli("runs")
    assert table.returncode == 0 and "one-mlp-" in table.stdout and "boom" in table.stdout
    only = json.loads(cli("runs", "--workflow", "two", "--json").stdout)
    assert [r["model"] for r in only] == ["linear"] and only[0]["reason"] == "ValueError: boom"
    failed = json.loads(cli("runs", "--status", "completed", "--json").stdout)
    assert [r["workflow"] for r in failed] == ["one"]


def test_metrics_reader_skips_a_line_being_written(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "train/loss": 0.5}\n{"epoch": 2, "train/lo')
    assert read_jsonl(path) == [{"epoch": 1, "train/loss": 0.5}]


def test_a_running_run_whose_process_died_reads_as_interrupted(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("wf", "m")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.update(status="running", pid=dead.pid)
    assert Run.open(run.dir, store).status == "interrupted"
    assert store.list()[0]["status"] == "interrupted"
    run.update(pid=os.getpid())
    assert Run.open(run.dir, store).status == "running"


def test_run_json_is_replaced_atomically(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("wf", "m", seed=1)
    run.update(epochs_done=1)
    assert not list(run.dir.glob(".*tmp"))  # no temporary file left behind
    assert json.loads((run.dir / "run.json").read_text())["epochs_done"] == 1
