"""Every user mistake gets one clear line on stderr, exit code 2, and no traceback."""
from __future__ import annotations

import pytest

WORKFLOW = """
name = "bad"
[dataset]
use = "kernel.synthetic"
num_samples = 40
[[models]]
use = "kernel.mlp"
"""

BROKEN_HOOK = """
from kernel import hookimpl
@hookimpl
def kernel_datasets():
    raise ValueError("the listing server is down")
"""

# (id, workflow text or None, command line, plugin source or None, words the message must contain)
CASES = [
    ("unknown component", WORKFLOW.replace("kernel.mlp", "kernel.mlpp"), ["run", "--dry-run", "{wf}"], None,
     ["models[0].use", "unknown model 'kernel.mlpp'", "did you mean 'kernel.mlp'"]),
    ("misspelled parameter", WORKFLOW + "hiden = 3\n", ["run", "--dry-run", "{wf}"], None,
     ["models[0].params.hiden", "unknown parameter", "did you mean 'hidden'"]),
    ("wrong type", WORKFLOW + "hidden = 'wide'\n", ["run", "--dry-run", "{wf}"], None,
     ["models[0].params.hidden", "expected int", "'wide'"]),
    ("missing workflow file", None, ["run", "{tmp}/nowhere.toml"], None,
     ["workflow file not found", "nowhere.toml"]),
    ("missing data file", WORKFLOW.replace('use = "kernel.synthetic"\nnum_samples = 40',
                                           'use = "kernel.tensors"\npath = "{tmp}/data.npz"'),
     ["run", "--dry-run", "{wf}"], None, ["dataset file not found", "data.npz"]),
    ("malformed TOML", "name = 'x'\n[dataset\n", ["run", "{wf}"], None, ["malformed TOML", "workflow.toml"]),
    ("not UTF-8", "name = '\udcff'\n", ["run", "{wf}"], None, ["not UTF-8"]),
    ("unknown setting", WORKFLOW + "[trainers]\nepochs = 1\n", ["run", "--dry-run", "{wf}"], None,
     ["trainers", "unknown setting"]),
    ("unknown kind", None, ["list", "modles"], None, ["unknown kind 'modles'", "did you mean 'models'"]),
    ("unknown command", None, ["rnu"], None, ["unknown command 'rnu'", "did you mean 'run'"]),
    ("unknown name in show", None, ["show", "kernel.acuracy"], None, ["did you mean 'kernel.accuracy'"]),
    ("bad --set", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "trainer.epochs"], None, ["PATH=VALUE"]),
    ("--set out of range", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "models[3].hidden=2"], None,
     ["models[3].hidden", "out of range"]),
    ("a plugin that raises", WORKFLOW.replace("kernel.synthetic", "flaky.data"), ["run", "--dry-run", "{wf}"],
     BROKEN_HOOK, ["plugin 'flaky'", "is broken", "the listing server is down"]),
    ("model that cannot take the data", WORKFLOW + "input_shape = [3]\n", ["run", "--dry-run", "{wf}"], None,
     ["mat1 and mat2"]),
    ("bad render index", WORKFLOW, ["render", "{wf}", "--index", "999"], None, ["--index 999", "out of range"]),
    # --set values of the wrong shape: tracebacks before
    ("a number as a name", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "trainer.optimizer.use=5"], None,
     ["trainer.optimizer.use", "expected the name of a component", "got 5"]),
    ("a number as a metric", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "trainer.metrics=[5]"], None,
     ["trainer.metrics[0]", "expected a component name", "got 5"]),
    ("text in a shape", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", 'dataset.shape=["a"]'], None,
     ["dataset (kernel.synthetic)", "invalid literal for int()", "'a'"]),
    ("a table as a name", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "trainer.optimizer={use={}}"], None,
     ["trainer.optimizer.use", "expected the name of a component", "got {}"]),
    ("a table as a metric name", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "trainer.metrics=[{use={}}]"],
     None, ["trainer.metrics[0].use", "expected the name of a component"]),
    ("a 300-character name", WORKFLOW.replace('name = "bad"', f'name = "{"n" * 300}"'), ["run", "{wf}"], None,
     ["name: at most 80 characters", "not 300"]),
    ("a setting inside a value", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "name.x=1"], None,
     ["--set name.x", "name is not a table"]),
    # values that passed the checks and failed the run
    ("a negative learning rate", WORKFLOW, ["run", "{wf}", "--set",
                                            'trainer.optimizer={use="torch.optim.SGD", lr=-1}'], None,
     ["trainer.optimizer", "Invalid learning rate: -1"]),
    ("a nested list as a number", WORKFLOW, ["run", "{wf}", "--set",
                                             'trainer.optimizer={use="torch.optim.SGD", lr=[[0.1]]}'], None,
     ["trainer.optimizer", "SGD refuses these settings"]),
    ("a string for a float", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", 'models[0].dropout="0.1"'], None,
     ["models[0].params.dropout", "expected float", "'0.1'", "write the number without quotes"]),
    ("a boolean for a number", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", "models[0].hidden=true"], None,
     ["models[0].params.hidden", "expected int", "True"]),
    ("the trainer's settings where the user wrote them", WORKFLOW, ["run", "--dry-run", "{wf}", "--set",
                                                                   'trainer.epochs="x"'], None,
     ["trainer.epochs: expected int"]),
    ("a name in the wrong case", WORKFLOW.replace("kernel.synthetic", "KERNEL.SYNTHETIC"),
     ["run", "--dry-run", "{wf}"], None, ["dataset.use", "did you mean 'kernel.synthetic'"]),
    ("a loss that does not fit the data", WORKFLOW, ["run", "--dry-run", "{wf}", "--set", 'trainer.loss="mse"'],
     None, ["models[0] (kernel.mlp)", "needs outputs shaped like the targets"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message(case, cli, tmp_path, fake_plugin):
    _, text, argv, plugin, words = case
    env = fake_plugin("flaky", plugin) if plugin else None
    wf = tmp_path / "workflow.toml"
    if text is not None:
        wf.write_bytes(text.replace("{tmp}", str(tmp_path)).encode("utf-8", "surrogateescape"))
    args = [a.replace("{wf}", str(wf)).replace("{tmp}", str(tmp_path)) for a in argv]
    proc = cli(*args, env=env)
    output = proc.stderr + proc.stdout
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    for word in words:
        assert word in proc.stderr, f"{word!r} missing from stderr: {output}"
    assert not list((tmp_path / "workspace" / "runs").glob("*/run.json"))  # before any run exists


def test_debug_shows_the_traceback(cli):
    proc = cli("--debug", "show", "kernel.acuracy")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "did you mean" in proc.stderr


def test_a_broken_plugin_leaves_the_rest_working(cli, fake_plugin):
    env = fake_plugin("flaky", BROKEN_HOOK)
    listed = cli("list", "models", env=env)
    assert listed.returncode == 0 and "kernel.mlp" in listed.stdout
    assert "flaky" in listed.stderr  # a warning that points to `kernel plugins`
    plugins = cli("plugins", env=env).stdout
    assert "broken" in plugins and "the listing server is down" in plugins


# -- data that passed the checks and failed the run: refused before any run exists -----------------
MIXED_SIZES = """
import torch

class Mixed:
    def __len__(self):
        return 24

    def __getitem__(self, i):
        side = 8 if i % 3 else 6
        return torch.randn(1, side, side), i % 2
"""

DATA_CASES = [
    ("labels out of range", {"targets": "np.arange(40) % 4", "classes": "np.array(['a', 'b'])"},
     ["dataset: the", "has label", "2 classes", "fix the labels or the class list"]),
    ("a single class", {"targets": "np.zeros(40, dtype=np.int64)"}, ["dataset:", "a single class"]),
    ("samples of mixed sizes", None, ["cannot be made into a batch", "different shapes", "(1, 8, 8)", "(1, 6, 6)",
                                      "add a transform that gives every sample one size"]),
]


@pytest.mark.parametrize("case, dry_run", [
    pytest.param(case, dry_run, id=f"{case[0]}-{'dry run' if dry_run else 'run'}")
    for case in DATA_CASES for dry_run in (True, False)])
def test_data_the_run_would_fail_on_is_refused_before_any_run(case, dry_run, cli, tmp_path, workspace):
    import numpy as np

    _, arrays, words = case
    env = None
    if arrays is None:
        (tmp_path / "mixed_sizes.py").write_text(MIXED_SIZES)
        env = {"PYTHONPATH": str(tmp_path)}
        dataset = 'use = "mixed_sizes:Mixed"'
    else:
        values = {k: eval(v, {"np": np}) for k, v in arrays.items()}
        np.savez(tmp_path / "data.npz", inputs=np.random.default_rng(0).normal(size=(40, 4)).astype("float32"),
                 **values)
        dataset = f'use = "kernel.tensors"\npath = "{tmp_path / "data.npz"}"'
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW.replace('use = "kernel.synthetic"\nnum_samples = 40', dataset))
    proc = cli("run", *(["--dry-run"] if dry_run else []), str(wf), env=env)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, f"{word!r} missing from: {proc.stderr}"
    assert not list((workspace / "runs").glob("*/run.json"))


# -- what the command line shows ------------------------------------------------------------------
def test_debug_shows_a_broken_plugins_own_traceback(cli, fake_plugin, tmp_path):
    env = fake_plugin("flaky", BROKEN_HOOK)
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW.replace("kernel.synthetic", "flaky.data"))
    quiet = cli("run", "--dry-run", str(wf), env=env)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    debug = cli("--debug", "run", "--dry-run", str(wf), env=env)
    assert debug.returncode == 2
    assert "in kernel_datasets" in debug.stderr  # the frame of the plugin's hook, not only the kernel's
    assert 'raise ValueError("the listing server is down")' in debug.stderr


FAILS_IN_TRAINING = """
from torch import nn

class FailsInTraining(nn.Module):
    def __init__(self, input_shape=(8,), num_classes=4):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)

    def forward(self, x):
        if self.training:
            raise RuntimeError("the model broke in training")
        return self.fc(x)
"""


def test_debug_shows_a_failed_runs_traceback(cli, tmp_path):
    (tmp_path / "fails_in_training.py").write_text(FAILS_IN_TRAINING)
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW.replace("kernel.mlp", "fails_in_training:FailsInTraining") + "[trainer]\nepochs = 1\n")
    proc = cli("--debug", "run", "--quiet", str(wf), env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    assert "the model broke in training" in proc.stderr and "Traceback" in proc.stderr


def test_dry_run_problems_go_to_stderr_in_full(cli, tmp_path):
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW + "input_shape = [3]\n")
    proc = cli("run", "--dry-run", str(wf))
    assert proc.returncode == 2
    line = next(x for x in proc.stderr.splitlines() if x.startswith("kernel: error:"))
    assert "models[0] (kernel.mlp)" in line and "mat1 and mat2" in line  # one line, not a wrapped cell
    as_json = cli("run", "--dry-run", "--json", str(wf))
    assert as_json.returncode == 2 and "mat1 and mat2" in as_json.stderr


def test_setup_steps_show_on_stderr_unless_quiet_or_json(cli, tmp_path):
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW)
    shown = cli("run", "--dry-run", str(wf))
    assert shown.returncode == 0, shown.stderr
    assert "kernel: building dataset kernel.synthetic" in shown.stderr
    assert "kernel: building" not in shown.stdout  # the plan stays clean on stdout
    for flag in ("--quiet", "--json"):
        quiet = cli("run", "--dry-run", flag, str(wf))
        assert quiet.returncode == 0 and "kernel: building" not in quiet.stderr + quiet.stdout


def test_a_string_where_a_list_goes_is_refused_not_split_into_characters():
    """Validation reads the target's annotation: a list of names, or "auto", refuses "abc" and [5]."""
    from typing import Literal

    from kernel.validation import type_problem

    names = list[str | dict] | Literal["auto"]
    assert type_problem(names, "abc") == "expected a list of str or dict, or 'auto', got 'abc'"
    assert "got [5]" in type_problem(names, [5])
    assert type_problem(names, ["kernel.accuracy", {"use": "kernel.f1"}]) == type_problem(names, "auto") == ""


def test_the_trainers_metrics_as_a_string_are_refused_at_their_place(cli, tmp_path):
    """Split into the metrics 'a', 'b' and 'c' before."""
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW)
    proc = cli("run", "--dry-run", str(wf), "--set", 'trainer.metrics="abc"')
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trainer.metrics: expected list or 'auto', got 'abc'" in proc.stderr


WARNS = """
import warnings

import torch
from torch import nn


class Warns(nn.Module):
    def __init__(self, input_shape=(16,), num_classes=4):
        super().__init__()
        warnings.warn("this model is an experiment")
        self.fc = nn.Linear(input_shape[0], num_classes)

    def forward(self, x):
        return self.fc(x).transpose(0, 1)  # not batch first
"""


def test_warnings_go_to_stderr_and_stdout_keeps_the_plan(cli, tmp_path):
    (tmp_path / "warns.py").write_text(WARNS)
    wf = tmp_path / "workflow.toml"
    wf.write_text(WORKFLOW.replace("kernel.mlp", "warns:Warns"))
    proc = cli("run", "--dry-run", str(wf), env={"PYTHONPATH": str(tmp_path)})
    assert "this model is an experiment" in proc.stderr and "this model is an experiment" not in proc.stdout
    assert "kernel: warning: models[0] (warns:Warns): the output's first dimension is not the batch size" \
        in proc.stderr
