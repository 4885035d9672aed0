"""The hook reference cannot drift from the code: every hook spec is documented in docs/hooks.md
with the signature it has, and has a test in tests/test_hooks.py (like datasette's meta-tests)."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from kernel import hookspecs
from kernel.testing import EVENTS

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("kernel_"))
DOCUMENTED = dict(re.findall(r"^## `(kernel_\w+)(\([^)]*\))`", (ROOT / "docs/hooks.md").read_text(), re.M))


def test_the_hook_specs_are_found():
    assert len(HOOKS) == 14 and "kernel_commands" in HOOKS and "kernel_kinds" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    assert hook in DOCUMENTED, f"docs/hooks.md has no section '## `{hook}(...)`'"
    actual = str(inspect.signature(getattr(hookspecs, hook)))
    assert DOCUMENTED[hook] == actual, f"docs/hooks.md documents {hook}{DOCUMENTED[hook]}, the code has {actual}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_spec_has_a_docstring(hook):
    assert (inspect.getdoc(getattr(hookspecs, hook)) or "").strip()


def test_docs_describe_no_hook_that_does_not_exist():
    assert sorted(DOCUMENTED) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    tree = ast.parse((ROOT / "tests/test_hooks.py").read_text())
    tests = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert any(t == f"test_hook_{hook}" or t.startswith(f"test_hook_{hook}_") for t in tests), \
        f"tests/test_hooks.py has no test_hook_{hook}"


def test_callback_events_are_the_same_in_code_and_docs():
    doc = (ROOT / "docs/hooks.md").read_text().split("## `kernel_callbacks()`")[1].split("\n## ")[0]
    spec = inspect.getdoc(hookspecs.kernel_callbacks)
    for event in EVENTS:
        assert f"`{event}`" in doc and f"``{event}``" in spec, event


def _section(hook: str) -> str:
    return (ROOT / "docs/hooks.md").read_text().split(f"## `{hook}(")[1].split("\n## ")[0]


def test_the_trainer_contract_names_what_the_code_has(tmp_path):
    """Every `run.<name>` the trainer section documents exists on a Run, the Result's fields are
    documented in their order, and the optional methods have the signatures of the kernel's trainer."""
    import dataclasses

    from kernel.store import RunStore
    from kernel.training import checkpoint
    from kernel.training.result import Result
    from kernel.training.supervised import Supervised

    section = _section("kernel_trainers")
    run = RunStore(tmp_path).create("contract", "model")
    documented = set(re.findall(r"`run\.(\w+)", section))
    assert {"set_status", "log", "quiet", "resuming", "callbacks", "events", "state", "fire",
            "request_stop", "checkpoints"} <= documented
    assert [name for name in sorted(documented) if not hasattr(run, name)] == []
    fields = re.search(r"`kernel\.Result\(([^)]*)\)`", section).group(1).split(", ")
    assert fields == [f.name for f in dataclasses.fields(Result)]
    for call in ("describe(data)", "check(model, data, defaults)", "fit(model, data, run)"):
        name, params = call[:-1].split("(")
        assert f"`{call}" in section
        assert list(inspect.signature(getattr(Supervised, name)).parameters)[1:4] == params.split(", ")
    for helper in re.findall(r"`(save|load|load_newest)\((\w+)", section):
        assert list(inspect.signature(getattr(checkpoint, helper[0])).parameters)[0] == helper[1]
