"""kernel compare: runs side by side, sorted, as CSV and JSON, curves plotted and exported; runs on
different datasets are not mixed unless asked; Results in Python."""
from __future__ import annotations

import csv
import io
import json

import pytest

from kernel.compare import compare_rows, sort_rows
from kernel.errors import KernelError
from kernel.store import RunStore


def fake_run(store, workflow, model, fingerprint, curve, params, monitor="valid/accuracy"):
    run = store.create(workflow, model, fingerprint=fingerprint, monitor=monitor, use=f"kernel.{model}",
                       params=params, defaults={"epochs": len(curve), "optimizer": {"lr": 0.1}}, param_count=10)
    for epoch, value in enumerate(curve, 1):
        run.log({"epoch": epoch, "train/loss": 1 / epoch, "valid/loss": 1 - value, "valid/accuracy": value})
    best = max(range(len(curve)), key=lambda i: curve[i])
    run.update(status="completed", epochs_done=len(curve),
               best={"epoch": best + 1, "valid/accuracy": curve[best], "valid/loss": 1 - curve[best]},
               final={"epoch": len(curve), "valid/accuracy": curve[-1], "valid/loss": 1 - curve[-1]})
    return run


@pytest.fixture
def runs(workspace):
    store = RunStore(workspace)
    a = fake_run(store, "wf", "mlp", "fp1", [0.5, 0.7, 0.6], {"hidden": 64})
    b = fake_run(store, "wf", "linear", "fp1", [0.4, 0.8], {"hidden": 32})
    return store, a, b


def test_compare_shows_differing_settings_and_best_and_final(runs, cli):
    _, a, b = runs
    out = cli("compare", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "params.hidden" in data["columns"] and "use" in data["columns"]
    assert "trainer.optimizer.lr" not in data["columns"]  # the same in both: not a difference
    rows = {r["model"]: r for r in data["rows"]}
    assert rows["mlp"]["best valid/accuracy"] == 0.7 and rows["mlp"]["final valid/accuracy"] == 0.6
    assert rows["linear"]["best_epoch"] == 2 and rows["linear"]["epochs"] == 2
    wide = cli("compare", "--wide")
    assert a.id in wide.stdout and b.id in wide.stdout
    table = cli("compare", env={"COLUMNS": "100"})  # ids as their shortest unique end, which commands accept
    assert a.id not in table.stdout and a.id[-4:] in table.stdout.split()
    assert a.id in cli("compare").stdout  # in a pipe with no width: whole, for scripts
    assert json.loads(cli("compare", a.id[-4:], "--json").stdout)["rows"][0]["id"] == a.id


def test_compare_sorts_and_writes_csv(runs, cli):
    out = cli("compare", "--csv", "--sort", "-best valid/accuracy")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["model"] for r in rows] == ["linear", "mlp"]
    asc = cli("compare", "--csv", "--sort", "best valid/accuracy")
    assert [r["model"] for r in csv.DictReader(io.StringIO(asc.stdout))] == ["mlp", "linear"]
    bad = cli("compare", "--sort", "nonsense")
    assert bad.returncode == 2 and "no such column" in bad.stderr


def test_compare_plots_and_exports_curves(runs, cli, workspace):
    out = cli("compare", "--plot", "curves.png", "--export-curves", "curves.csv")
    assert out.returncode == 0, out.stderr
    assert "best, final: valid/accuracy" in out.stdout and "mlp" in out.stdout  # the table still printed
    assert (workspace / "curves.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(open(workspace / "curves.csv")))
    accuracy = [r for r in rows if r["metric"] == "valid/accuracy"]
    assert len(accuracy) == 5 and {r["model"] for r in accuracy} == {"mlp", "linear"}


def test_runs_on_different_datasets_are_not_mixed(runs, cli):
    store, a, b = runs
    other = fake_run(store, "wf", "mlp", "fp2", [0.9], {"hidden": 64})
    mixed = cli("compare", a.id, other.id)
    assert mixed.returncode == 2 and "--any-dataset" in mixed.stderr
    allowed = cli("compare", a.id, other.id, "--any-dataset", "--json")
    assert allowed.returncode == 0 and len(json.loads(allowed.stdout)["rows"]) == 2
    newest = json.loads(cli("compare", "--json").stdout)  # no RUN: the newest run's dataset only
    assert [r["id"] for r in newest["rows"]] == [other.id]


def test_sort_rows_and_compare_rows_in_python(runs):
    store, a, b = runs
    columns, rows = compare_rows([a.info, b.info])
    assert [r["model"] for r in sort_rows(columns, rows, "params.hidden")] == ["linear", "mlp"]
    assert [r["model"] for r in sort_rows(columns, rows, "-params.hidden")] == ["mlp", "linear"]
    with pytest.raises(KernelError):
        sort_rows(columns, rows, "zzz")


def test_results_table_best_and_plot(workspace, tmp_path):
    from rich.console import Console

    from kernel.runner import Results, run_workflow
    from kernel.workflow import Workflow

    wf = Workflow(name="res", dataset={"use": "kernel.synthetic", "num_samples": 120, "shape": [4]},
                  models=[{"use": "kernel.mlp"}, {"use": "kernel.linear"}],
                  trainer={"epochs": 2, "tensorboard": False})
    results = run_workflow(wf, quiet=True)
    assert isinstance(results, Results) and len(results) == 2 and results.ok
    console = Console(record=True, width=300)
    console.print(results.table())
    text = console.export_text()
    assert "mlp" in text and "linear" in text
    best = results.best("valid/loss")
    assert best.info["best"]["valid/loss"] == min(r.info["best"]["valid/loss"] for r in results)
    results.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").exists()
    assert json.loads(json.dumps(results.to_dict()))["ok"] is True


# -- what a user sees at 100 columns ----------------------------------------------------------------
def many_runs(store, n=6):
    """Runs whose ids share long prefixes and whose settings differ in many places."""
    out = []
    for i in range(n):
        out.append(fake_run(store, "a-rather-long-workflow-name", "kernel.mlp", "fp1", [0.3 + 0.05 * i, 0.4 + 0.05 * i],
                            {"hidden": 16 * (i + 1), "dropout": 0.1 * i, "activation": f"relu{i}",
                             "layers": [i, i + 1], "norm": "batch" if i % 2 else "layer"}))
    return out


def test_compare_and_runs_read_at_100_columns(workspace, cli):
    store = RunStore(workspace)
    runs = many_runs(store)
    env = {"COLUMNS": "100"}
    for args in (["compare"], ["runs"]):
        out = cli(*args, env=env)
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stdout.splitlines() if not line.startswith("best, final")]
        assert lines and max(len(line) for line in out.stdout.splitlines()) <= 100, out.stdout
        assert len(lines) == 1 + len(runs), out.stdout  # one line per run: nothing wrapped
        assert "…" not in out.stdout, out.stdout  # nothing cut either
        header = lines[0].split()
        assert header[:2] == ["id", "workflow" if args == ["runs"] else "model"], lines[0]
        ids = [line.split()[0] for line in lines[1:]]
        assert len(set(ids)) == len(runs) and all(len(i) <= 6 for i in ids)
        for short in ids:  # a short id is the unique end of one: commands take it
            assert cli("compare", short, "--json").returncode == 0
        assert "best" in lines[0] and "valid/accuracy" in out.stdout
        wide = cli(*args, "--wide", env={"COLUMNS": "1000"})
        assert all(r.id in wide.stdout for r in runs)
        assert len(wide.stdout.splitlines()[0]) > len(lines[0])  # the rest of the columns
    data = json.loads(cli("compare", "--json", env=env).stdout)
    assert {"params.hidden", "params.dropout", "params.activation", "params.layers", "params.norm",
            "best_epoch", "params"} <= set(data["columns"])  # --json: every column


def test_a_queued_run_makes_no_differing_column(workspace):
    store = RunStore(workspace)
    a = fake_run(store, "wf", "mlp", "fp1", [0.5, 0.7], {"hidden": 64, "num_classes": 3})
    b = fake_run(store, "wf", "mlp", "fp1", [0.4, 0.8], {"hidden": 32, "num_classes": 3})
    queued = store.create("wf", "mlp", fingerprint="fp1", monitor="valid/accuracy", use="kernel.mlp",
                          params={"hidden": 16}, defaults={"epochs": 2, "optimizer": {"lr": 0.1}})
    columns, _ = compare_rows([a, b, queued])  # the queued run's num_classes is not filled in yet
    assert "params.hidden" in columns and "params.num_classes" not in columns


def test_print_results_table_is_a_readable_table(workspace, capsys):
    from kernel.runner import Results

    store = RunStore(workspace)
    results = Results(many_runs(store, 3))
    print(results.table())
    out = capsys.readouterr().out
    assert "rich.table" not in out and "object at" not in out
    assert "model" in out.splitlines()[0] and out.count("kernel.mlp") == 3


@pytest.mark.slow
def test_the_end_of_run_summary_reads_at_100_columns(cli):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "synthetic.toml"
    out = cli("run", example, "--set", "trainer.epochs=1", "--quiet", env={"COLUMNS": "100"})
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(table) if line.split()[:2] == ["id", "model"])
    end = next(i for i, line in enumerate(table) if line.startswith("best, final"))
    assert end == header + 3 and all(len(line) <= 100 for line in table[header:end + 1]), out.stdout
    assert "best" in table[header].split() and "best, final: valid/accuracy" in out.stdout
    assert {"mlp", "linear"} <= set(" ".join(table[header + 1:header + 3]).split())
