"""One test per hook spec (tests/test_hooks_meta.py makes sure of it): each registers a real plugin
(a module with an entry point in the group ``kernel``, found through a ``.dist-info`` on PYTHONPATH)
and checks that the kernel uses what the hook returns as docs/hooks.md says, and that the
conformance check (``kernel.testing``) accepts the plugin, or names what breaks the contract."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRELUDE = """
import json
from kernel.build import prepare
from kernel.testing import check_plugin
from kernel.workflow import Workflow

def plan(**workflow):  # nothing is trained in these tests: the check's stand-in trainer will do
    return prepare(Workflow(name="t", trainer={"use": "kernel.testing:no_trainer"}, **workflow))

def findings(name):
    return [str(f) for f in check_plugin(name)]
"""


def in_kernel(env: dict, code: str):
    """Run code in a fresh interpreter that sees the test plugin; returns the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def workflow_file(tmp_path, text: str) -> Path:
    path = tmp_path / "workflow.toml"
    path.write_text(textwrap.dedent(text) + '\n[trainer]\nuse = "kernel.testing:no_trainer"\n')
    return path


DATASETS = """
from kernel import Component, hookimpl

class Pairs:
    def __init__(self, size, offset=0.0):
        self.size, self.offset, self.classes = size, offset, ["low", "high"]
    def __len__(self):
        return self.size
    def __getitem__(self, i):
        import torch
        return torch.full((3,), i % 2 + self.offset), i % 2

def splits(size: int = 30):
    return {"train": Pairs(size), "test": Pairs(10, 0.5)}

def no_pairs():
    import torch
    return torch.zeros(5, 3)  # indexing gives tensors, not (input, target) pairs

@hookimpl
def kernel_datasets():
    return [Component("kds.pairs", "ktest_kds_plugin:splits", tags=("kds",)),
            Component("kds.bad", "ktest_kds_plugin:no_pairs", tags=("kds",))]
"""


def test_hook_kernel_datasets(fake_plugin):
    env = fake_plugin("kds", DATASETS)
    out = in_kernel(env, """
        p = plan(dataset={"use": "kds.pairs", "size": 20, "split": {"valid": 0}}, models=["kernel.linear"])
        print(json.dumps({"splits": {k: len(v) for k, v in p.data.splits.items()},
                          "classes": p.data.classes, "num_classes": p.data.facts["num_classes"],
                          "findings": findings("kds")}))
    """)
    assert out["splits"] == {"train": 20, "valid": 10}  # the source's own splits, test used as valid
    assert out["classes"] == ["low", "high"] and out["num_classes"] == 2
    assert out["findings"] == ["error: kds.bad (dataset): item 0 is a Tensor, not an (input, target) pair"]


TRANSFORMS = """
import math
from kernel import Component, hookimpl

class Scale:
    def __init__(self, factor: float = 1.0):
        self.factor, self.seen, self.peak = factor, None, None
    def fit(self, dataset):
        self.seen = len(dataset)
        self.peak = max(float(dataset[i][0].abs().max()) for i in range(len(dataset)))
    def __call__(self, x):
        return x * self.factor / self.peak
    def facts(self):
        return {"fitted_on": self.seen}
    def state_dict(self):
        return {"seen": self.seen, "peak": self.peak}
    def load_state_dict(self, state):
        self.seen, self.peak = state["seen"], state["peak"]

class Forgetful(Scale):
    def load_state_dict(self, state):
        self.peak = 1.0  # drops the fitted state: a restored run would transform differently

def flat(input_shape, fitted_on: int = 0, num_classes: int = 2):
    import torch
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), num_classes))
    model.fitted_on = fitted_on
    return model

@hookimpl
def kernel_transforms():
    return [Component("ktf.scale", "ktest_ktf_plugin:Scale"),
            Component("ktf.forgetful", "ktest_ktf_plugin:Forgetful")]

@hookimpl
def kernel_models():
    return [Component("ktf.flat", "ktest_ktf_plugin:flat")]
"""


def test_hook_kernel_transforms(fake_plugin):
    env = fake_plugin("ktf", TRANSFORMS)
    out = in_kernel(env, """
        p = plan(dataset={"use": "kernel.synthetic", "num_samples": 50, "split": {"valid": 0.2},
                          "transforms": [{"use": "ktf.scale", "factor": 2.0}]}, models=["ktf.flat"])
        model, filled = p.model(0)
        peak = max(float(p.data.splits[s][i][0].abs().max()) for s in ("train",) for i in range(40))
        print(json.dumps({"fitted_on": p.data.facts["fitted_on"], "filled": filled["fitted_on"], "peak": peak,
                          "findings": findings("ktf")}))
    """)
    assert out["fitted_on"] == 40 == out["filled"]  # fitted on the training split only, fact fed to the model
    assert out["peak"] == pytest.approx(2.0)
    assert len(out["findings"]) == 1 and out["findings"][0].startswith("error: ktf.forgetful (transform): after "
                                                                       "load_state_dict(state_dict())")


MODELS = """
from kernel import Component, hookimpl

def conv(in_channels, num_classes, width: int = 4):
    import torch
    return torch.nn.Sequential(torch.nn.Conv2d(in_channels, width, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(width, num_classes))

def not_a_module(num_classes):
    return lambda x: x

@hookimpl
def kernel_models():
    # images, not the flat vectors kernel.synthetic makes by default: "_dataset" names the data to check on
    return [Component("kmd.conv", "ktest_kmd_plugin:conv",
                      example={"_dataset": {"use": "kernel.synthetic", "shape": [1, 5, 5]}}),
            Component("kmd.lambda", "ktest_kmd_plugin:not_a_module")]
"""


@pytest.mark.slow
def test_hook_kernel_models(fake_plugin, cli, tmp_path):
    env = fake_plugin("kmd", MODELS)
    path = workflow_file(tmp_path, """
        [dataset]
        use = "kernel.synthetic"
        shape = [2, 8, 8]
        num_samples = 40
        [[models]]
        use = "kmd.conv"
        width = 6
    """)
    proc = cli("run", "--dry-run", "--json", path, env=env)
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["models"][0]
    assert model["filled"] == {"in_channels": 2, "num_classes": 4}
    assert model["output"] == "(2, 4) float32" and model["parameters"] == 2 * 6 * 9 + 6 + 6 * 4 + 4
    checked = json.loads(cli("check-plugin", "kmd", "--json", env=env).stdout)
    assert [(f["component"], f["message"]) for f in checked["findings"]] == [
        ("kmd.lambda", "built a function, not a torch.nn.Module")]


RENDERERS = """
from kernel import Component, hookimpl

def squares(size: int = 12):
    import torch
    return [(torch.rand(3, 4, 4), i % 2) for i in range(size)]

class Stripes:
    def score(self, meta):
        return 0.95 if meta["role"] == "input" and len(meta["shape"]) == 3 and "krd" in meta["tags"] else 0.0
    def render(self, tensor, context):
        from PIL import Image
        return Image.new("RGB", (tensor.shape[-1] * 5, tensor.shape[-2] * 3))

@hookimpl
def kernel_datasets():
    return [Component("krd.squares", "ktest_krd_plugin:squares", tags=("krd",))]

@hookimpl
def kernel_renderers():
    return [Component("krd.stripes", "ktest_krd_plugin:Stripes", tags=("krd",))]
"""


@pytest.mark.slow
def test_hook_kernel_renderers(fake_plugin, cli, tmp_path):
    env = fake_plugin("krd", RENDERERS)
    path = workflow_file(tmp_path, """
        [dataset]
        use = "krd.squares"
        [[models]]
        use = "kernel.linear"
    """)
    proc = cli("render", path, "--index", "1", "-o", tmp_path / "png", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "input: " in proc.stdout and "(renderer krd.stripes)" in proc.stdout  # the highest score wins
    from PIL import Image

    assert Image.open(tmp_path / "png" / "train_1_input.png").size == (20, 12)
    assert json.loads(cli("check-plugin", "krd", "--json", env=env).stdout)["findings"] == []


ANALYZERS = """
from kernel import Component, Report, hookimpl

def pairs(size: int = 50):
    return [(float(i), i % 3) for i in range(size)]

class AsTensor:
    def __call__(self, x):
        import torch
        return torch.tensor([x])

class Counter:
    raw = True  # sees samples before the transforms: the plain floats
    def start(self, info):
        self.sizes, self.counts, self.kinds = info["splits"], {}, set()
    def update(self, batch):
        self.counts[batch["split"]] = self.counts.get(batch["split"], 0) + len(batch["inputs"])
        self.kinds.update(type(x).__name__ for x in batch["inputs"])
    def finish(self):
        return Report("Counter", values={**self.counts, "kinds": sorted(self.kinds)},
                      suggestions={"sizes": self.sizes})

@hookimpl
def kernel_datasets():
    return [Component("kan.numbers", "ktest_kan_plugin:pairs", tags=("kan",))]

@hookimpl
def kernel_transforms():
    return [Component("kan.as_tensor", "ktest_kan_plugin:AsTensor", tags=("kan",))]

@hookimpl
def kernel_analyzers():
    return [Component("kan.counter", "ktest_kan_plugin:Counter", tags=("kan",))]
"""


@pytest.mark.slow
def test_hook_kernel_analyzers(fake_plugin, cli, tmp_path):
    env = fake_plugin("kan", ANALYZERS)
    path = workflow_file(tmp_path, """
        [dataset]
        use = "kan.numbers"
        transforms = [{ use = "kan.as_tensor" }]
        [[models]]
        use = "kernel.linear"
    """)
    proc = cli("analyze", path, "-o", tmp_path / "reports", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "reports" / "kan.counter.json").read_text())  # ran by default: tags meet
    assert report["values"] == {"train": 40, "valid": 10, "kinds": ["float"]}
    assert report["suggestions"] == {"sizes": {"train": 40, "valid": 10}}
    assert json.loads(cli("check-plugin", "kan", "--json", env=env).stdout)["findings"] == []


METRICS = """
from kernel import Component, hookimpl

class Hits:
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.reset()
    def reset(self):
        self.hits, self.total = 0, 0
    def update(self, preds, target):
        self.hits += int((preds.argmax(1) == target).sum())
        self.total += len(target)
    def compute(self):
        return self.hits / max(1, self.total)

class Sticky(Hits):
    def reset(self):
        if not hasattr(self, "hits"):
            self.hits, self.total = 0, 0  # later resets forget to clear

@hookimpl
def kernel_metrics():
    return [Component("kmt.hits", "ktest_kmt_plugin:Hits"), Component("kmt.sticky", "ktest_kmt_plugin:Sticky")]
"""


@pytest.mark.slow
def test_hook_kernel_metrics(fake_plugin):
    env = fake_plugin("kmt", METRICS)
    out = in_kernel(env, """
        p = plan(dataset={"use": "kernel.synthetic", "num_classes": 5}, models=["kernel.linear"])
        print(json.dumps({"num_classes": p.build("kmt.hits", "metric").num_classes, "findings": findings("kmt")}))
    """)
    assert out["num_classes"] == 5  # filled from the data facts, like a model's
    assert len(out["findings"]) == 1 and out["findings"][0].startswith("error: kmt.sticky (metric): reset() does "
                                                                       "not clear the state")


TRAINERS = """
from kernel import Component, hookimpl

class Loop:
    def __init__(self, epochs: int = 1):
        self.epochs = epochs
    def describe(self, data):
        return {"epochs": self.epochs, "train size": len(data.train)}
    def fit(self, model, data, run):  # trains nothing, but keeps the contract (docs/hooks.md)
        from kernel import Result

        run.set_status("completed")
        return Result(run.id, "completed", epochs_done=self.epochs, final={"epoch": self.epochs})

@hookimpl
def kernel_trainers():
    return [Component("ktr.loop", "ktest_ktr_plugin:Loop")]
"""


@pytest.mark.slow
def test_hook_kernel_trainers(fake_plugin, cli, tmp_path):
    env = fake_plugin("ktr", TRAINERS)
    path = tmp_path / "workflow.toml"
    path.write_text(textwrap.dedent("""
        [dataset]
        use = "kernel.synthetic"
        num_samples = 50
        [[models]]
        use = "kernel.linear"
        [trainer]
        use = "ktr.loop"
        epochs = 3
    """))
    proc = cli("run", "--dry-run", "--json", path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["defaults"] == {"epochs": 3, "train size": 40}
    bad = cli("run", "--dry-run", path, "--set", "trainer.epoch=3", env=env)
    assert bad.returncode == 2 and "trainer.epoch: unknown parameter" in bad.stderr  # its parameters are validated
    assert json.loads(cli("check-plugin", "ktr", "--json", env=env).stdout)["findings"] == []


EXPORTERS = """
from kernel import Component, hookimpl

class Weights:
    def export(self, model, example, path):
        import torch
        from kernel import Artifact
        torch.save(model.state_dict(), path)
        return Artifact(str(path), "state_dict", {"batch": int(example.shape[0])})

class Nothing:
    def export(self, model, example, path):
        return None

@hookimpl
def kernel_exporters():
    return [Component("kex.weights", "ktest_kex_plugin:Weights"), Component("kex.nothing", "ktest_kex_plugin:Nothing")]
"""


@pytest.mark.slow
def test_hook_kernel_exporters(fake_plugin, cli):
    env = fake_plugin("kex", EXPORTERS)
    listed = json.loads(cli("list", "exporters", "--json", env=env).stdout)
    assert {"kex.weights", "kex.nothing"} <= {c["name"] for c in listed}
    checked = json.loads(cli("check-plugin", "kex", "--json", env=env).stdout)
    assert checked["ok"] is False
    assert sorted(f["message"] for f in checked["findings"] if f["component"] == "kex.nothing") == [
        "export() returned None; return a kernel.Artifact describing the file",
        "export() wrote nothing at " + [f["message"] for f in checked["findings"]
                                        if "wrote nothing" in f["message"]][0].split(" at ", 1)[1]]
    assert not [f for f in checked["findings"] if f["component"] == "kex.weights"]


CALLBACKS = """
from kernel import Component, hookimpl

class Tally:
    def __init__(self, every: int = 1):
        self.every, self.epochs = every, 0
    def on_epoch_end(self, run, state):
        self.epochs += 1

class Typo:
    def on_epoch_ended(self, run, state):
        pass

@hookimpl
def kernel_callbacks():
    return [Component("kcb.tally", "ktest_kcb_plugin:Tally"), Component("kcb.typo", "ktest_kcb_plugin:Typo")]
"""


def test_hook_kernel_callbacks(fake_plugin):
    env = fake_plugin("kcb", CALLBACKS)
    out = in_kernel(env, """
        p = plan(dataset="kernel.synthetic", models=["kernel.linear"], callbacks=[{"use": "kcb.tally", "every": 2}])
        (tally,) = p.callbacks()
        tally.on_epoch_end(None, {})
        print(json.dumps({"every": tally.every, "epochs": tally.epochs, "findings": findings("kcb")}))
    """)
    assert out["every"] == 2 and out["epochs"] == 1
    (finding,) = out["findings"]
    assert finding.startswith("error: kcb.typo (callback): on_epoch_ended: there is no event 'epoch_ended' "
                              "(did you mean 'epoch_end'")
    assert finding.endswith("events are: fit_start, epoch_start, batch_end, validation_end, epoch_end, fit_end, "
                            "exception")


COMMANDS = """
from kernel import hookimpl

@hookimpl
def kernel_commands(cli):
    p = cli.command("ktest-hello", "ktest_kcm_command:hello", help="greet someone")
    p.add_argument("--name", default="world")
"""

COMMAND_MODULE = """
import sys
print("the command module was imported", file=sys.stderr)

def hello(args):
    print(f"hello {args.name}")
    return 3
"""


def test_hook_kernel_commands(fake_plugin, cli):
    env = fake_plugin("kcm", COMMANDS)
    site = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    (site / "ktest_kcm_command.py").write_text(COMMAND_MODULE)
    helped = cli("--help", env=env)
    assert "ktest-hello" in helped.stdout and "greet someone" in helped.stdout
    assert "was imported" not in helped.stderr  # listing commands imports none of them
    ran = cli("ktest-hello", "--name", "Ada", env=env)
    assert ran.stdout.strip() == "hello Ada" and ran.returncode == 3
    assert json.loads(cli("check-plugin", "kcm", "--json", env=env).stdout)["findings"] == [
        {"component": "kcm", "kind": "plugin", "message": "the plugin offers no component", "level": "warning"}]


SECTIONS = """
from kernel import Component, KernelError, hookimpl

class Notes:
    \"\"\"The [notes] table.

    Args:
        author: who wrote the workflow.
        epochs_hint: an epoch count the notes recommend.
    \"\"\"
    def __init__(self, author: str, epochs_hint: int = 1):
        if not author.strip():
            raise KernelError("notes.author: give a name")
        self.epochs_hint = epochs_hint

    def check(self, workflow):
        epochs = workflow.trainer.params.get("epochs")
        if epochs is not None and epochs < self.epochs_hint:
            return [("notes.epochs_hint", f"the trainer trains {epochs} epoch(s), fewer than {self.epochs_hint}")]
        return []

@hookimpl
def kernel_sections():
    return [Component("notes", "ktest_notes_plugin:Notes", example={"author": "Ada"})]
"""


def test_hook_kernel_sections(fake_plugin, cli, tmp_path):
    """A plugin's table is checked (its keys as the target's parameters, then check(workflow)),
    located as written, and ignored by the kernel's own run; a table nobody owns is refused."""
    env = fake_plugin("notes", SECTIONS)
    good = workflow_file(tmp_path, """
        name = "notes"
        [dataset]
        use = "kernel.synthetic"
        num_samples = 64
        [[models]]
        use = "kernel.linear"
        [notes]
        author = "Ada"
        epochs_hint = 1
    """)
    assert cli("run", str(good), "--dry-run", env=env).returncode == 0
    assert in_kernel(env, f"""
        from kernel.workflow import Workflow
        wf = Workflow.from_file({str(good)!r})
        print(json.dumps(wf.sections))""") == {"notes": {"author": "Ada", "epochs_hint": 1}}
    for line, expected in [('epochs_hint = "3"', "notes.epochs_hint: expected int"),
                           ("epoch_hint = 3", "notes.epoch_hint: unknown setting (did you mean 'epochs_hint'?)"),
                           ("epochs_hint = 9", "notes.epochs_hint: the trainer trains 1 epoch(s), fewer than 9")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(good.read_text().replace("epochs_hint = 1", line).replace(
            '[trainer]\nuse = "kernel.testing:no_trainer"', '[trainer]\nuse = "kernel.testing:no_trainer"\nepochs = 1'))
        proc = cli("run", str(bad), "--dry-run", env=env)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    unowned = tmp_path / "unowned.toml"
    unowned.write_text(good.read_text().replace("[notes]", "[nots]"))
    proc = cli("run", str(unowned), "--dry-run", env=env)
    assert proc.returncode == 2 and "nots: unknown setting (did you mean 'notes'?)" in proc.stderr
    listed = cli("list", "sections", "--json", env=env)
    assert {c["name"]: c["kind"] for c in json.loads(listed.stdout)}["notes"] == "section"
    assert "author" in cli("show", "notes", env=env).stdout
    assert json.loads(cli("check-plugin", "notes", "--json", env=env).stdout)["findings"] == []


FINISHING = """
from pathlib import Path

from kernel import Component, KernelError, hookimpl

class Publish:
    \"\"\"The [publish] table: acts on the runs once they have ended.

    Args:
        to: the file the run ids are written to.
        fail: raise instead (a failed upload).
    \"\"\"
    def __init__(self, to: str = "published.txt", fail: bool = False):
        self.to, self.fail = to, fail

    def finish(self, results):
        if self.fail:
            raise KernelError("the model registry refused the upload")
        Path(self.to).write_text("\\n".join(f"{r.id} {r.status}" for r in results))

def publish_cmd(args):
    return 0

@hookimpl
def kernel_sections():
    return [Component("publish", "ktest_pub_plugin:Publish")]

@hookimpl
def kernel_commands(cli):
    cli.command("publish", "ktest_pub_plugin:publish_cmd", help="publish runs")
"""


def test_hook_kernel_sections_finish_acts_on_the_ended_runs(fake_plugin, cli, tmp_path):
    """``finish(results)`` runs once the workflow's runs have ended; a failure is reported, makes
    ``kernel run`` exit 1 and leaves the runs completed. A table may be named after a command its
    plugin adds (plugin ``pub`` owns ``[publish]``)."""
    env = fake_plugin("pub", FINISHING)
    out = tmp_path / "published.txt"
    good = tmp_path / "pub.toml"
    good.write_text(textwrap.dedent(f"""
        name = "pub"
        [dataset]
        use = "kernel.synthetic"
        num_samples = 64
        [[models]]
        use = "kernel.linear"
        [[models]]
        use = "kernel.mlp"
        [trainer]
        epochs = 1
        [publish]
        to = {str(out)!r}
    """))
    proc = cli("run", str(good), "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(line.endswith(" completed") for line in lines)
    failing = tmp_path / "failing.toml"
    failing.write_text(good.read_text().replace(f"to = {str(out)!r}", "fail = true"))
    proc = cli("run", str(failing), "--quiet", "--json", env=env)
    assert proc.returncode == 1
    assert "kernel: [publish] failed: the model registry refused the upload" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["problems"] == ["[publish]: the model registry refused the upload"]
    assert {r["status"] for r in result["runs"]} == {"completed"}
    assert json.loads(cli("check-plugin", "pub", "--json", env=env).stdout)["findings"] == []
    renamed = fake_plugin("pub2", FINISHING.replace("ktest_pub_plugin", "ktest_pub2_plugin")
                          .replace('Component("publish"', 'Component("publish2"')
                          .replace('cli.command("publish"', 'cli.command("announce"'))
    findings = json.loads(cli("check-plugin", "pub2", "--json", env=renamed).stdout)["findings"]
    assert [f["message"] for f in findings] == [
        "a plugin's workflow table is named after the plugin or a command it adds: call it 'pub2'"]


def test_kernel_runs_shows_what_was_exported(cli, workspace, tmp_path):
    """run.json's ``exports`` (written by exporters' commands) in an ``exports`` column."""
    good = tmp_path / "exp.toml"
    good.write_text('name = "exp"\n[dataset]\nuse = "kernel.synthetic"\nnum_samples = 64\n[[models]]\n'
                    'use = "kernel.linear"\n[trainer]\nepochs = 1\n')
    assert cli("run", str(good), "--quiet").returncode == 0
    assert "exports" not in cli("runs").stdout.splitlines()[0]
    (run_json,) = (workspace / "runs").glob("*/run.json")
    info = json.loads(run_json.read_text())
    info["exports"] = [{"format": "onnx", "verified": True, "path": "a.onnx"},
                       {"format": "onnx", "quantized": "dynamic", "verified": True, "path": "a.int8.onnx"},
                       {"format": "torchscript", "verified": False, "path": "a.pt.unverified"}]
    run_json.write_text(json.dumps(info))
    assert cli("runs", "--reindex").returncode == 0
    listing = cli("runs").stdout
    assert "exports" in listing.splitlines()[0]
    assert "onnx, onnx int8, torchscript (unverified)" in listing


KINDS_DECLARED = """
from kernel import Component, Kind, hookimpl

def check_lexicon(obj):
    return [f"term {term!r} has no definition" for term, text in obj.items() if not text]

def terms(extra: str = ""):
    return {"epoch": "one pass over the training split", **({extra: ""} if extra else {})}

@hookimpl
def kernel_kinds():
    return [Kind("lexicon", doc="Return the lexicons the plugin offers: target(**params) returns a dict "
                                 "term -> definition.", check=check_lexicon)]

@hookimpl
def kernel_lexicons():
    return [Component("kkinds.terms", "ktest_kkinds_plugin:terms", summary="terms of training"),
            Component("kkinds.gaps", "ktest_kkinds_plugin:terms", example={"extra": "fold"})]
"""


def test_hook_kernel_kinds(fake_plugin, cli):
    """A declared kind gets a hook spec documented by its doc, taking no argument; the catalog lists
    its components with the kind after the built-in ones; check-plugin runs the kind's check."""
    env = fake_plugin("kkinds", KINDS_DECLARED)
    assert in_kernel(env, """
        import inspect, kernel
        catalog = kernel.get_catalog()
        spec = catalog.plugins.manager.hook.kernel_lexicons.spec
        print(json.dumps([inspect.getdoc(spec.function), spec.argnames, list(catalog.kinds[:10]) == list(kernel.KINDS),
                          "lexicon" in catalog.kinds[10:], catalog.plugins.declared["lexicon"].plugin,
                          [c.name for c in catalog.list("lexicons")]]))""") \
        == ["Return the lexicons the plugin offers: target(**params) returns a dict term -> definition.", [], True,
            True, "kkinds", ["kkinds.gaps", "kkinds.terms"]]
    assert cli("list", "lexicon", env=env).stdout.count("lexicon") == 2
    found = json.loads(cli("check-plugin", "kkinds", "--json", env=env).stdout)["findings"]
    assert found == [{"component": "kkinds.gaps", "kind": "lexicon", "message": "term 'fold' has no definition",
                      "level": "error"}]


METHODS = """
from kernel import hookimpl

def describe(workflow, prefix="workflow"):
    return f"{prefix} {workflow.name} with {len(workflow.models)} model(s)"

def weights(loaded, scale=1):
    return [loaded.checkpoint, scale * sum(p.numel() for p in loaded.model.parameters())]

@hookimpl
def kernel_methods():
    return {"Workflow.describe_me": "ktest_meth_plugin:describe", "LoadedRun.weights": "ktest_meth_plugin:weights"}
"""

CLASHING_METHODS = """
from kernel import hookimpl

@hookimpl
def kernel_methods():
    return {"%s": "ktest_clash_plugin:run"}
"""


def test_hook_kernel_methods(fake_plugin, workspace):
    """A plugin's method is called on the workflow, or on a loaded run, with the caller's arguments;
    an unknown one is an AttributeError with a "did you mean"; a plugin that claims a name the class
    has (a method, a field, an attribute its instances get) is broken."""
    env = fake_plugin("meth", METHODS)
    assert in_kernel(env, """
        import copy, kernel
        wf = Workflow(name="w", dataset={"use": "kernel.synthetic", "params": {"num_samples": 32}},
                      models=["kernel.linear"], trainer={"use": "kernel.supervised", "epochs": 1}, analyzers=[])
        try:
            wf.describe_mee
            missing = None
        except AttributeError as exc:
            missing = str(exc)
        (run,) = wf.run(quiet=True, artifacts=False)
        loaded = kernel.load(run.id)
        size = sum(p.numel() for p in loaded.model.parameters())
        try:
            loaded.weigths
        except AttributeError as exc:
            missing_too = str(exc)
        blank = type(loaded).__new__(type(loaded))  # as unpickling makes one: private names fail at once
        try:
            blank._plan
        except AttributeError as exc:
            private = str(exc)
        print(json.dumps([wf.describe_me(prefix="the workflow"), missing, loaded.weights(scale=2) == ["best.pt", 2 * size],
                          missing_too, private, copy.copy(loaded).checkpoint]))""") == [
        "the workflow w with 1 model(s)", "'Workflow' object has no attribute 'describe_mee' (did you mean 'describe_me'?)",
        True, "'LoadedRun' object has no attribute 'weigths' (did you mean 'weights'?)",
        "'LoadedRun' object has no attribute '_plan'", "best.pt"]
    not_owner = " is not 'Workflow.<name>' or 'LoadedRun.<name>' (only these take methods)"
    for key, why in [("Workflow.run", ": Workflow has 'run' already"), ("Workflow.models", ": Workflow has 'models' already"),
                     ("LoadedRun.predict", ": LoadedRun has 'predict' already"),
                     ("LoadedRun.model", ": LoadedRun has 'model' already"),  # set by __init__, not on the class
                     ("LoadedRun._plan", not_owner), ("Run.explain", not_owner)]:
        env = fake_plugin("clash", CLASHING_METHODS % key)
        assert in_kernel(env, """
            import kernel
            from kernel.methods import methods
            catalog = kernel.get_catalog()
            table = methods(catalog)
            info = catalog.plugins.infos["clash"]
            print(json.dumps([table.get("%s", ("",))[0], info.status, info.error]))""" % key) == [
            "", "broken", f"hook kernel_methods: {key!r}{why}"]


BAD_SUGGESTION = """
from kernel import Component, Report, hookimpl

class Odd:
    def start(self, info):
        pass
    def update(self, batch):
        pass
    def finish(self):
        return Report("Odd", values={"seen": 1}, suggestions={"trainer.epochs": None})

@hookimpl
def kernel_analyzers():
    return [Component("odd.suggestion", "ktest_odd_plugin:Odd", tags=("generic",))]
"""


@pytest.mark.slow
def test_an_analyzer_suggesting_what_no_workflow_holds_is_a_warning(fake_plugin, cli, tmp_path):
    """A third-party analyzer's suggestion with no TOML form (None): `kernel analyze` warns, naming
    it, and still prints every report (before, a TypeError traceback ended the command)."""
    env = fake_plugin("odd", BAD_SUGGESTION)
    path = workflow_file(tmp_path, """
        [dataset]
        use = "kernel.synthetic"
        [[models]]
        use = "kernel.linear"
    """)
    proc = cli("analyze", path, "-o", tmp_path / "reports", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "analyzer odd.suggestion suggests a value a workflow cannot hold" in proc.stderr
    assert "Traceback" not in proc.stderr and "Odd" in proc.stdout and "Class balance" in proc.stdout


REPORT_SECTIONS = """
from kernel import Section, hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    workflows = ", ".join(sorted({run["workflow"] for run in runs}))
    return [Section("Seen by ksec", f"<p class='ksec'>{len(runs)} runs of {workflows} in {workspace.name}</p>")]
"""

RAISING_SECTIONS = """
from kernel import hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    raise RuntimeError("the study database is unreachable")
"""

ODD_SECTIONS = """
from kernel import hookimpl

@hookimpl
def kernel_report_sections(runs, workspace):
    return "<p>a fragment, not a list of Section</p>"
"""


def test_hook_kernel_report_sections(fake_plugin, cli, workspace):
    """A plugin's section is in the written report with the runs and the workspace it was given;
    a plugin whose hook raises, or answers something else than a list of Section, is a warning on
    the page naming it, and the rest of the report is there."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from runstore_fixtures import write_run

    fake_plugin("ksec", REPORT_SECTIONS)
    fake_plugin("ksecraise", RAISING_SECTIONS)
    env = fake_plugin("ksecodd", ODD_SECTIONS)
    write_run(workspace / "runs", model="mlp", index=0)
    write_run(workspace / "runs", model="cnn", index=1)
    proc = cli("report", "--workflow", "digits", "-o", "report.html", env=env)
    assert proc.returncode == 0, proc.stderr
    page = (workspace / "report.html").read_text()
    data = json.loads(page.split('id="kernel-data">', 1)[1].split("</script>", 1)[0])
    given = data["plugin_sections"]
    (section,) = [s for s in given["sections"] if s["plugin"] == "ksec"]
    assert section["title"] == "Seen by ksec" and section["id"] == "plugin-ksec-1"
    assert section["html"] == "<p class='ksec'>2 runs of digits in workspace</p>"
    raised = [w for w in given["warnings"] if "'ksecraise'" in w]
    odd = [w for w in given["warnings"] if "'ksecodd'" in w]
    assert len(raised) == 1 and "RuntimeError: the study database is unreachable" in raised[0]
    assert len(odd) == 1 and "returned a str, not a list of kernel.Section" in odd[0]
    assert len(data["runs"]) == 2 and data["groups"][0]["dataset"]["samples"]  # the rest of the page
    assert 'id="plugin-sections"' in page and "Traceback" not in proc.stderr
