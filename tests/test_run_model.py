"""One run model: the report, the dashboard, `kernel compare` and `Results` read runs as
``kernel.store.Run`` through one reader (kernel/run_reader.py), choose them with one function,
flatten their settings one way, and judge which way a metric is better by one rule
(kernel/metric_mode.py), the run's own saved mode first."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runstore_fixtures import write_run  # noqa: E402

from kernel.compare import compare_rows, key_table  # noqa: E402
from kernel.errors import KernelError  # noqa: E402
from kernel.metric_mode import mode_for  # noqa: E402
from kernel.report.page import build_page, display_settings  # noqa: E402
from kernel.report.runs import StoreReader  # noqa: E402
from kernel.run_reader import open_run, select_runs, settings, short_ids  # noqa: E402
from kernel.runner import Results  # noqa: E402
from kernel.store import Run, RunStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(workspace):
    root = workspace / "runs"
    write_run(root, model="mlp", quality=0.7, index=0, params={"hidden": 64})
    write_run(root, model="cnn", quality=0.9, index=1, params={"hidden": 128})
    write_run(root, workflow="speech", model="rnn", quality=0.5, index=2, fingerprint="aa00ff")
    return RunStore(workspace)


def test_the_rule(store):
    assert mode_for("valid/loss") == "min" and mode_for("valid/MeanSquaredError") == "min"
    assert mode_for("valid/rmse") == "min" and mode_for("train/nll") == "min"
    assert mode_for("valid/accuracy") == "max" and mode_for("valid/power") == "max"
    assert mode_for("valid/answer_f1") == "max"  # no word list that "wer" or "cer" could slip into
    info = {"monitor": "valid/score", "mode": "min"}
    assert mode_for("valid/score", info) == "min" and mode_for("valid/other", info) == "max"


def test_the_runs_saved_mode_wins_everywhere(workspace):
    """A monitor whose name says nothing, minimised by the run's own mode: Results, compare's table
    and the report agree (they used three word lists before, which ignored the saved mode)."""
    root = workspace / "runs"
    dirs = [write_run(root, model=m, quality=q, index=i) for i, (m, q) in enumerate([("a", 0.9), ("b", 0.5)])]
    for d in dirs:
        info = json.loads((d / "run.json").read_text())
        info.update(monitor="valid/accuracy", mode="min")  # e.g. an error rate logged under that name
        (d / "run.json").write_text(json.dumps(info))
    runs = [open_run(d) for d in dirs]
    assert Results(runs).best().info["model"] == "b"
    group = build_page(runs)["groups"][0]
    assert group["mode"] == "min" and group["best_run"] == runs[1].id
    columns, rows = compare_rows(runs)
    assert "lower is better" in str(key_table(columns, rows, runs).caption)


def test_no_other_word_list_in_the_readers():
    """The report, compare, Results and the reader import the rule; none keeps a list of its own."""
    for name in ("compare.py", "run_reader.py", "report/page.py", "report/server.py", "report/html.py"):
        text = (ROOT / "kernel" / name).read_text()
        assert '"mse"' not in text and "loss|" not in text and '("loss"' not in text, name
    results = ast.get_source_segment(src := (ROOT / "kernel" / "runner.py").read_text(),
                                     next(n for n in ast.parse(src).body if getattr(n, "name", "") == "Results"))
    assert '"loss"' not in results and "mode_for" in results


def test_one_run_class_for_every_reader(store):
    scanned = StoreReader(store.root).scan()
    chosen = select_runs(store, newest="workflow")
    assert all(type(r) is Run for r in scanned + chosen)
    results = Results(chosen)
    assert build_page(results.runs)["runs"][0]["id"] == chosen[0].id  # Results' runs go into the report
    assert compare_rows(scanned)[1][0]["id"] == scanned[0].id  # and into compare, as they are


def test_one_flattening_of_settings(store):
    """compare's columns and the page's parameter names are the same settings, only labelled."""
    run = next(r for r in select_runs(store, workflow="digits") if r.info["model"] == "mlp")
    flat = settings(run.info)
    assert flat["use"] == "kernel.mlp" and flat["params.hidden"] == 64 and flat["trainer.optimizer.lr"] == 1e-3
    assert "trainer.device" not in flat and flat["seed"] == 0
    shown = display_settings(run.info)
    assert shown == {("model" if k == "use" else k.removeprefix("params.")): v for k, v in flat.items()}


def test_selection(store):
    digits = select_runs(store, newest="workflow")  # no RUN: the workflow trained last
    assert [r.info["model"] for r in digits] == ["rnn"]
    assert [r.info["model"] for r in select_runs(store, workflow="digits")] == ["mlp", "cnn"]
    assert [r.info["model"] for r in select_runs(store, newest="dataset")] == ["rnn"]  # the newest run's data
    rnn, mlp = digits[0], select_runs(store, workflow="digits")[0]
    with pytest.raises(KernelError, match="--any-dataset"):
        select_runs(store, [rnn.id, mlp.id], any_dataset=False)
    both = select_runs(store, [rnn.id[:-2], mlp.id[-4:]])  # a unique prefix, a unique end
    assert [r.id for r in both] == [rnn.id, mlp.id]
    with pytest.raises(KernelError, match="no runs of workflow 'digitz'.*did you mean 'digits'"):
        select_runs(store, workflow="digitz")


def test_a_short_id_that_is_also_another_runs_prefix_is_ambiguous(tmp_path):
    """Tables print unique ends; a reference that is the end of one id and the start of another
    names two runs, and must not quietly pick the prefix's."""
    from kernel.store import RunStore

    store = RunStore(tmp_path)
    for run_id in ("face-mlp-20261122-080000-1a2b", "wf-mlp-20261122-080000-face", "wf-mlp-20261122-080000-9c9c"):
        (store.root / run_id).mkdir(parents=True)
        (store.root / run_id / "run.json").write_text(json.dumps({"id": run_id}))
    with pytest.raises(KernelError, match="ambiguous"):
        store.get("face")
    assert store.get("9c9c").id.endswith("9c9c") and store.get("face-mlp").id.startswith("face-mlp")
    ids = sorted(p.name for p in store.root.iterdir())
    shown = short_ids(ids)  # what tables print names one run each, ends that start another id included
    assert shown["wf-mlp-20261122-080000-face"] == "-face"
    assert all(store.get(short).id == run_id for run_id, short in shown.items())


def test_short_ids_are_unique_ends_among_the_whole_store(store):
    ids = sorted(p.name for p in store.root.iterdir())
    twin = ids[0][:-4] + "x" + ids[0][-3:]  # a run of the store that differs only in the 4th last character
    shorts = short_ids(ids[:1], among=ids + [twin])
    assert shorts[ids[0]] == ids[0][-4:]
    assert short_ids(["a-0001", "b-0001"]) == {"a-0001": "a-0001", "b-0001": "b-0001"}
    with pytest.raises(KernelError, match="ambiguous"):
        store.root.joinpath("x-" + ids[0][-4:]).mkdir()
        store.root.joinpath("x-" + ids[0][-4:], "run.json").write_text(json.dumps({"id": "x-" + ids[0][-4:]}))
        store.get(ids[0][-4:])
