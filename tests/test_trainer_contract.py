"""The trainer contract, checked by `kernel check-plugin`: each trainer of a plugin is trained for one
epoch on small synthetic data in a temporary workspace, and what its fit() returns and records is
validated. The check's probe cannot be shadowed by folders where the command runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GOOD = """
from kernel import Component, hookimpl

class OneLoop:
    \"\"\"A hand-written loop: what a third-party trainer owes the runner, and no more.\"\"\"
    def __init__(self, epochs: int = 5, lr: float = 0.1):
        self.epochs, self.lr = epochs, lr

    def describe(self, data):
        return {"epochs": self.epochs, "lr": self.lr}

    def fit(self, model, data, run):
        import torch
        from kernel import Result

        assert self.epochs == 1, "the check trains one epoch"
        print("a trainer may print: the findings stay apart, on stdout")
        assert run.quiet and not run.resuming and run.callbacks == []
        run.set_status("running")
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr)
        for epoch in range(1, self.epochs + 1):
            losses = []
            for inputs, targets in data.loader("train", 16, shuffle=True):
                loss = torch.nn.functional.cross_entropy(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss))
            row = {"epoch": epoch, "train/loss": sum(losses) / len(losses)}
            run.log(row)
        run.info.update(epochs_done=self.epochs, final=row)
        run.set_status("completed")
        return Result(run.id, "completed", epochs_done=self.epochs, final=row)

@hookimpl
def kernel_trainers():
    return [Component("kgood.loop", "ktest_kgood_plugin:OneLoop")]
"""

BAD = """
from kernel import Component, hookimpl, Result

class Nothing:
    def fit(self, model, data, run):
        run.set_status("completed")
        return None

class Sloppy:
    \"\"\"Says it completed, but leaves the run queued, with a word where a number belongs.\"\"\"
    def fit(self, model, data, run):
        return Result(run.id, "completed", final={"accuracy": "high"})

@hookimpl
def kernel_trainers():
    return [Component("kbad.nothing", "ktest_kbad_plugin:Nothing"),
            Component("kbad.sloppy", "ktest_kbad_plugin:Sloppy")]
"""


def findings(cli, name, env):
    proc = cli("check-plugin", name, "--json", env=env)
    report = json.loads(proc.stdout)
    return proc.returncode, [(f["component"], f["level"], f["message"]) for f in report["findings"]]


def test_a_third_party_trainer_that_keeps_the_contract_conforms(cli, fake_plugin):
    env = fake_plugin("kgood", GOOD)
    assert findings(cli, "kgood", env) == (0, [])


def test_a_trainer_returning_none_or_a_sloppy_result_is_reported(cli, fake_plugin):
    env = fake_plugin("kbad", BAD)
    code, found = findings(cli, "kbad", env)
    assert code == 1
    assert found == [
        ("kbad.nothing", "error", "fit() returned None; return a kernel.Result (kernel.Result(run.id, status, ...)): "
                                  "the runner marks a run whose trainer returns None failed"),
        ("kbad.sloppy", "error", "Result.final['accuracy'] is a str, not a number"),
        ("kbad.sloppy", "error", "run.json says the run is 'queued' but fit() returned 'completed': record how the "
                                 "run ended with run.set_status(status, reason)"),
    ]


def test_the_builtin_trainer_passes_its_one_epoch_check(workspace):
    from kernel.catalog import get_catalog
    from kernel.testing import Checker

    checker = Checker("kernel", get_catalog())
    comp = get_catalog().get("kernel.supervised", "trainer")
    checker.check_trainer(comp)
    assert checker.findings == []


def _kernel_command() -> list[str]:
    """The console script users run (its folder, not the current one, is first on sys.path)."""
    script = Path(sys.executable).with_name("kernel")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "kernel.cli"]


def test_check_plugin_is_not_shadowed_by_folders_in_the_current_directory(tmp_path, fake_plugin):
    env = {**os.environ, **fake_plugin("kgood", GOOD), "KERNEL_HOME": str(tmp_path / "home")}
    here = tmp_path / "project"
    for package in ("kernel", "ktest_kgood_plugin"):  # the kernel's name, and the plugin's module's
        (here / package).mkdir(parents=True)
        (here / package / "__init__.py").write_text(f"raise ImportError('the folder {package}/, not the package')\n")
    for plugin in ("kernel", "kgood"):
        proc = subprocess.run([*_kernel_command(), "check-plugin", plugin], cwd=here, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "not the package" not in proc.stdout and f"plugin {plugin} conforms" in proc.stdout
