"""Plugins as users get them: distributions built in a temporary folder and pip-installed (into a
folder of their own on the commands' PYTHONPATH, so that tests running beside these never see them;
entry point group ``kernel``), then found, isolated when broken, disabled, and refused when two
offer one name."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import os

import pytest

GOOD_PLUGIN = '''
"""Hooks only: the targets live in ktest_good_pkg.parts, imported when built."""
from kernel import Component, hookimpl

@hookimpl
def kernel_datasets():
    return [Component("ktest_good.numbers", "ktest_good_pkg.parts:numbers", summary="Numbered points",
                      tags=("ktest_good",))]

@hookimpl
def kernel_models():
    return [Component("ktest_good.tiny", "ktest_good_pkg.parts:Tiny", summary="A tiny model", tags=("ktest_good",))]
'''

GOOD_PARTS = '''
import torch

def numbers(size: int = 30):
    """Points on a line, labelled by parity.

    Args:
        size: how many points.
    """
    return [(torch.tensor([float(i), 1.0]), i % 2) for i in range(size)]

class Tiny(torch.nn.Module):
    def __init__(self, input_shape, num_classes, hidden: int = 4):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(input_shape[0], hidden), torch.nn.Linear(hidden, num_classes))
    def forward(self, x):
        return self.net(x)
'''

COPYCAT_PLUGIN = '''
from kernel import Component, hookimpl

@hookimpl
def kernel_models():
    return [Component("ktest_good.tiny", "torch.nn:Identity", summary="The same name, from another distribution")]
'''

BROKEN_ON_IMPORT = 'raise RuntimeError("ktest: broken on import")\n'

BROKEN_HOOK = '''
from kernel import hookimpl

@hookimpl
def kernel_models():
    raise ValueError("ktest: broken hook")
'''

DISTRIBUTIONS = {
    "ktest-good": ({"ktest_good": "ktest_good_pkg.plugin"},
                   {"ktest_good_pkg/__init__.py": "", "ktest_good_pkg/plugin.py": GOOD_PLUGIN,
                    "ktest_good_pkg/parts.py": GOOD_PARTS}),
    "ktest-copycat": ({"ktest_copycat": "ktest_copycat_pkg.plugin"},
                      {"ktest_copycat_pkg/__init__.py": "", "ktest_copycat_pkg/plugin.py": COPYCAT_PLUGIN}),
    # one distribution, two plugins: one fails to import, the other's hook raises
    "ktest-broken": ({"ktest_broken_import": "ktest_broken_pkg.on_import", "ktest_broken_hook": "ktest_broken_pkg.hook"},
                     {"ktest_broken_pkg/__init__.py": "", "ktest_broken_pkg/on_import.py": BROKEN_ON_IMPORT,
                      "ktest_broken_pkg/hook.py": BROKEN_HOOK}),
}


def write_distribution(folder: Path, name: str, entry_points: dict, files: dict) -> Path:
    root = folder / name
    package = next(iter(files)).split("/")[0]
    eps = "\n".join(f'{k} = "{v}"' for k, v in entry_points.items())
    (root / package).mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1.0"

        [project.entry-points.kernel]
        """) + eps + f'\n\n[tool.setuptools]\npackages = ["{package}"]\n')
    for path, text in files.items():
        (root / path).write_text(textwrap.dedent(text))
    return root


def pip(*args):
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


#: where the distributions are installed: seen by this module's `kernel` commands only (PYTHONPATH), never
#: by tests running beside them on another pytest-xdist worker, as an install into the venv would be
SITE: list[Path] = []


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The three distributions, pip-installed (into a folder of their own) for the module's tests only."""
    folder = tmp_path_factory.mktemp("dists")
    roots = [write_distribution(folder, name, eps, files) for name, (eps, files) in DISTRIBUTIONS.items()]
    site = folder / "site"
    pip("install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), *map(str, roots))
    SITE.append(site)
    try:
        yield folder
    finally:
        SITE.remove(site)


def kernel(*args, env=None):
    """The real command line (what the `kernel` console script runs), seeing the installed distributions."""
    paths = [str(p) for p in SITE] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    full_env = {**os.environ, **({"PYTHONPATH": os.pathsep.join(paths)} if paths else {}), **(env or {})}
    return subprocess.run([sys.executable, "-m", "kernel.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=300)


def plugins(*options, env=None) -> dict:
    """`kernel [OPTIONS] plugins --json`, by plugin name."""
    return {p["name"]: p for p in json.loads(kernel(*options, "plugins", "--json", env=env).stdout)["plugins"]}


@pytest.mark.slow
def test_an_installed_plugin_is_listed_and_shown(installed):
    alone = ("-p", "no:ktest_copycat")  # the copycat's claim on ktest_good.tiny is another test's subject
    listed = {c["name"]: c for c in json.loads(kernel(*alone, "list", "--tag", "ktest_good", "--json").stdout)}
    assert set(listed) == {"ktest_good.numbers", "ktest_good.tiny"}
    assert listed["ktest_good.numbers"] == {"name": "ktest_good.numbers", "kind": "dataset", "plugin": "ktest_good",
                                            "summary": "Numbered points", "tags": ["ktest_good"]}
    good = plugins(*alone)["ktest_good"]
    assert (good["distribution"], good["version"], good["status"], good["components"]) == \
        ("ktest-good", "0.1.0", "loaded", 2)
    assert "how many points." in kernel("show", "ktest_good.numbers").stdout
    checked = kernel(*alone, "check-plugin", "ktest_good")
    assert checked.returncode == 0 and "plugin ktest_good conforms: 0 error(s), 0 warning(s)" in checked.stdout


@pytest.mark.slow
def test_broken_plugins_are_reported_while_everything_else_works(installed):
    infos = plugins()
    assert infos["ktest_broken_import"]["status"] == "broken"
    assert infos["ktest_broken_import"]["error"] == "RuntimeError: ktest: broken on import"
    assert infos["ktest_broken_hook"]["status"] == "broken"
    assert "kernel_models raised ValueError: ktest: broken hook" in infos["ktest_broken_hook"]["error"]
    assert infos["ktest_broken_hook"]["distribution"] == "ktest-broken"
    listing = kernel("list", "models")
    assert listing.returncode == 0 and "kernel.mlp" in listing.stdout
    assert "ktest_broken_import (ktest-broken) is broken" in listing.stderr
    checked = kernel("check-plugin", "ktest_broken_import", "--json")
    assert checked.returncode == 1
    assert "the plugin is broken: RuntimeError: ktest: broken on import" in checked.stdout


@pytest.mark.slow
def test_disabled_plugins_are_not_imported(installed):
    env = {"KERNEL_DISABLE_PLUGINS": "ktest_broken_import,ktest_good"}
    infos = plugins(env=env)
    for name in ("ktest_broken_import", "ktest_good"):
        # importing the first would have raised and marked it broken, with its error
        assert (infos[name]["status"], infos[name]["error"]) == ("disabled", "")
    names = {c["name"] for c in json.loads(kernel("list", "--json", env=env).stdout)}
    assert "kernel.mlp" in names and "ktest_good.numbers" not in names
    infos = plugins("-p", "no:ktest_broken_hook")
    assert (infos["ktest_broken_hook"]["status"], infos["ktest_broken_hook"]["error"]) == ("disabled", "")


@pytest.mark.slow
def test_two_distributions_offering_one_name_is_an_error_naming_both(installed):
    shown = kernel("show", "ktest_good.tiny")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "'ktest_good.tiny' is offered by both" in shown.stderr
    assert "ktest-good" in shown.stderr and "ktest-copycat" in shown.stderr
    # disabling one of them settles it
    assert kernel("-p", "no:ktest_copycat", "show", "ktest_good.tiny").returncode == 0


def _fake_plugin(model_name: str):
    """A hook module offering one model, as an entry point would load it."""
    import types

    from kernel import Component, hookimpl

    module = types.ModuleType(f"fake_{model_name.replace('.', '_')}")

    @hookimpl
    def kernel_models():
        return [Component(model_name, "torch.nn:Identity", summary="fake")]

    module.kernel_models = kernel_models
    return module


def _entry_point(name: str, dist: str, module):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, dist=SimpleNamespace(name=dist, version="1.0"), load=lambda: module)


def test_a_second_distribution_claiming_a_plugin_name_is_a_conflict_and_the_first_stays(monkeypatch, capsys):
    """Two distributions, one plugin name: the first (by distribution name) loads; the second is
    listed as broken, naming both; the healthy one is not knocked out. Entry points are faked."""
    from kernel import catalog as catalog_module
    from kernel import plugins as plugins_module
    from kernel.cli import main

    healthy = _entry_point("acme", "acme-a", _fake_plugin("acme.net"))
    claimant = _entry_point("acme", "acme-b", _fake_plugin("acme.other"))
    # the environment lists the claimant first: the order must not decide
    monkeypatch.setattr(plugins_module.metadata, "entry_points", lambda group: [claimant, healthy])
    monkeypatch.setattr(catalog_module, "_CATALOG", {})
    plugins = plugins_module.load_plugins()
    assert plugins.infos["acme"].status == "loaded" and plugins.infos["acme"].distribution == "acme-a"
    second = plugins.infos["acme (acme-b)"]
    assert second.status == "broken" and second.distribution == "acme-b"
    assert "'acme' is already taken by acme-a" in second.error and "acme-b" in second.error
    cat = catalog_module.Catalog(plugins)
    assert "acme.net" in cat.names("model") and "acme.other" not in cat.names("model")

    assert main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["plugins"]
    acme = [(p["name"], p["distribution"], p["status"]) for p in listed if p["name"] == "acme"]
    assert acme == [("acme", "acme-a", "loaded"), ("acme", "acme-b", "broken")]
