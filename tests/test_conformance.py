"""The conformance check's plugin-wide rules, and the kernel's own built-in plugin held to them."""
from __future__ import annotations

import json

import pytest

HEAVY_HOOKS = """
import torch  # at import time: every `kernel list` would pay for it
from kernel import Component, hookimpl

@hookimpl
def kernel_models():
    return [Component("kheavy.linear", "torch.nn:Identity")]
"""

SLOPPY = """
from kernel import Component, hookimpl

@hookimpl
def kernel_model():  # not a hook: never called
    return []

@hookimpl
def kernel_metrics():
    return [Component("accuracy", "ktest_ksloppy_plugin:Acc")]  # not namespaced by the plugin

class Acc:
    def update(self, preds, target): pass
    def compute(self): return 0.0
    def reset(self): pass
"""


BATCHED = """
from kernel import Component, hookimpl

@hookimpl
def kernel_transforms():
    return [Component("kbatch.double", "ktest_kbatch_plugin:Double"),
            Component("kbatch.wrong", "ktest_kbatch_plugin:Wrong")]

class Double:
    \"\"\"Doubles its input, per sample or once per batch.\"\"\"
    def __call__(self, x):
        return x * 2
    def batched(self, before):
        from kernel import BatchForm  # a lazy name: it imports torch

        def collate(items):
            from torch.utils.data import default_collate
            batch = default_collate(items)
            return [batch[0] * 2, batch[1]]
        return BatchForm(0, collate)

class Wrong(Double):
    \"\"\"Doubles per sample, triples per batch: the loaders would see other inputs.\"\"\"
    def batched(self, before):
        from kernel import BatchForm

        def collate(items):
            from torch.utils.data import default_collate
            batch = default_collate(items)
            return [batch[0] * 3, batch[1]]
        return BatchForm(0, collate)
"""


def findings(cli, name, env=None):
    proc = cli("check-plugin", name, "--json", env=env)
    report = json.loads(proc.stdout)
    return proc.returncode, [(f["component"], f["level"], f["message"]) for f in report["findings"]]


@pytest.mark.slow
def test_a_hook_module_that_imports_torch_fails_the_check(cli, fake_plugin):
    env = fake_plugin("kheavy", HEAVY_HOOKS)
    code, found = findings(cli, "kheavy", env)
    assert code == 1
    ((component, level, message),) = found
    assert (component, level) == ("kheavy", "error")
    assert message.startswith("importing ktest_kheavy_plugin and calling its hooks imports torch")
    assert message.endswith("import heavy libraries inside the targets, not in the hook module")


@pytest.mark.slow
def test_misnamed_hooks_and_unprefixed_names_are_found(cli, fake_plugin):
    env = fake_plugin("ksloppy", SLOPPY)
    code, found = findings(cli, "ksloppy", env)
    assert code == 1
    assert len(found) == 2
    assert found[0][:2] == ("ksloppy", "error")
    assert found[0][2].startswith("kernel_model is not a hook (did you mean 'kernel_models'")
    assert found[1] == ("accuracy", "error", "component names are namespaced by the plugin: call it ksloppy....")


@pytest.mark.slow
def test_the_builtin_plugin_conforms(cli):
    proc = cli("check-plugin", "kernel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # kernel.tensors reads a file the check has not got; everything else is exercised
    assert proc.stdout.splitlines()[0] == ("warning: kernel.tensors (dataset): not exercised: it needs path; give "
                                           "the component example={'path': ...}")
    assert "plugin kernel conforms: 0 error(s), 1 warning(s)" in proc.stdout


NEEDS_A_FILE = """
from kernel import Component, hookimpl

def read(path: str):
    raise AssertionError("the check must not build what it has no parameters for")

@hookimpl
def kernel_datasets():
    return [Component("kfile.read", "ktest_kfile_plugin:read")]
"""


def test_strict_fails_on_warnings(cli, fake_plugin):
    env = fake_plugin("kfile", NEEDS_A_FILE)
    assert findings(cli, "kfile", env) == (0, [("kfile.read", "warning", "not exercised: it needs path; give the "
                                                                          "component example={'path': ...}")])
    strict = cli("check-plugin", "kfile", "--strict", env=env)
    assert strict.returncode == 1 and "plugin kfile does not conform: 0 error(s), 1 warning(s)" in strict.stdout


@pytest.mark.slow
def test_a_batch_form_that_computes_otherwise_is_found(cli, fake_plugin):
    env = fake_plugin("kbatch", BATCHED)
    code, found = findings(cli, "kbatch", env)
    assert code == 1
    assert [(c, level) for c, level, _ in found] == [("kbatch.wrong", "error")]
    assert "its batch form (batched()) makes another batch than applying it to each sample" in found[0][2]
