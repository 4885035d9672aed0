"""The kernel's layers: the core (hooks, catalog, workflow model, build, data, CLI) imports neither
the trainer (``kernel.training``) nor the report (``kernel.report``).

Checked by reading the source (an AST scan: module-level and function-level imports, absolute and
relative), so an import hidden inside a function is caught as well as one at the top, and with no
dependency beyond the standard library.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[1] / "kernel"

CORE = ["catalog.py", "component.py", "hookspecs.py", "plugins.py", "workflow.py", "validation.py", "build.py",
        "data.py", "cli.py", "errors.py", "commands/catalog.py", "commands/plugins.py"]
FORBIDDEN = ("kernel.training", "kernel.report")

#: Known violations, to be removed as they are fixed: (core file, forbidden module it imports). An
#: entry that no longer occurs fails the test too, so this list can only shrink.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(KERNEL.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """Every module ``path`` imports, wherever the import statement stands, as absolute names."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    source = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from . import training` / `from kernel import report` name the module as an alias
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((str(node.args[0].value), node.lineno))
    return found


def violations() -> list[tuple[str, str, int]]:
    out = []
    for name in CORE:
        for module, line in imported_modules(KERNEL / name):
            for forbidden in FORBIDDEN:
                if module == forbidden or module.startswith(forbidden + "."):
                    out.append((name, forbidden, line))
    return out


def test_the_scan_sees_every_kind_of_import():
    """The scanner itself: top-level, in a function, relative, `from . import x`, import_module."""
    source = ("import kernel.training.checkpoint\n"
              "def f():\n    from ..report import html\n    from .. import training\n"
              "    import importlib\n    importlib.import_module('kernel.report.page')\n")
    found = {m for m, _ in imported_modules(KERNEL / "commands" / "probe.py", source)}
    assert {"kernel.training.checkpoint", "kernel.report", "kernel.training", "kernel.report.page"} <= found


def test_the_core_imports_neither_the_trainer_nor_the_report():
    missing = [name for name in CORE if not (KERNEL / name).is_file()]
    assert not missing, f"core modules moved or renamed; update CORE: {missing}"
    found = violations()
    new = [v for v in found if (v[0], v[1]) not in ALLOWED]
    assert not new, "the core imports the trainer or the report:\n" + "\n".join(
        f"  kernel/{name}:{line} imports {module}" for name, module, line in new)
    fixed = ALLOWED - {(v[0], v[1]) for v in found}
    assert not fixed, f"fixed, remove from ALLOWED: {sorted(fixed)}"


def test_importing_the_core_loads_neither_the_trainer_nor_the_report():
    """What the scan cannot see: an import through another module. Importing every core module
    (the way `kernel list` and `kernel plugins` do) leaves kernel.training and kernel.report unloaded."""
    modules = [module_name(KERNEL / name) for name in CORE]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.startswith(('kernel.training', 'kernel.report'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
