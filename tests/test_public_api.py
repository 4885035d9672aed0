"""The kernel's public API is what `kernel/__init__.py` exports: the in-tree plugins use nothing
else of the kernel, and docs/plugin-guide.md documents every exported name."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kernel

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted(p for folder in ("plugins", "contrib") for p in (ROOT / folder).rglob("*.py")
                      if ".egg-info" not in str(p) and "plugin-template" not in str(p))
#: kernel.testing is the conformance check for plugins' own tests (docs/plugin-guide.md says so)
ALSO_PUBLIC = {"kernel.testing"}


def kernel_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, what)`` for each use of the kernel that is not a public name."""
    bad, imports_kernel = [], False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                (node.module == "kernel" or node.module.startswith("kernel.")):
            if node.module in ALSO_PUBLIC:
                continue
            if node.module != "kernel":
                bad.append((node.lineno, f"from {node.module} import ..."))
                continue
            bad += [(node.lineno, f"from kernel import {a.name}") for a in node.names if a.name not in kernel.__all__]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "kernel":
                    imports_kernel = True
                elif alias.name.startswith("kernel.") and alias.name not in ALSO_PUBLIC:
                    bad.append((node.lineno, f"import {alias.name}"))
    if imports_kernel:  # then `kernel.X` must be public too
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "kernel" \
                    and node.attr not in kernel.__all__ and f"kernel.{node.attr}" not in ALSO_PUBLIC \
                    and node.attr != "__version__":
                bad.append((node.lineno, f"kernel.{node.attr}"))
    return bad


def test_the_scan_catches_internal_imports():
    source = "import kernel\nfrom kernel.errors import did_you_mean\nfrom kernel import Component, _LAZY\n" \
             "import kernel.build\nkernel.catalog.get_catalog()\nkernel.create('x')\n"
    assert [what for _, what in kernel_uses(ast.parse(source))] == \
        ["from kernel.errors import ...", "from kernel import _LAZY", "import kernel.build", "kernel.catalog"]


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_api(path):
    bad = kernel_uses(ast.parse(path.read_text(encoding="utf-8")))
    assert not bad, "\n".join(f"{path.relative_to(ROOT)}:{line}: {what} is not in kernel.__all__" for line, what in bad)


def test_every_public_name_is_documented_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugin-guide.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`kernel\.(\w+)", guide))
    assert sorted(set(kernel.__all__) - documented) == []


def test_every_public_name_resolves_without_importing_torch_until_used():
    import subprocess
    import sys

    code = ("import sys, kernel\nlazy = set(kernel._LAZY)\n"
            "eager = [n for n in kernel.__all__ if n not in lazy]\n"
            "[getattr(kernel, n) for n in eager]\n"
            "assert 'torch' not in sys.modules, 'an eager public name imported torch'\n"
            "[getattr(kernel, n) for n in lazy]\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr
