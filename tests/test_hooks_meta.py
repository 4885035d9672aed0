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
    assert len(HOOKS) == 10 and "kernel_commands" in HOOKS


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
