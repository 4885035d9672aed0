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
        assert word in output, f"{word!r} missing from: {output}"


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
