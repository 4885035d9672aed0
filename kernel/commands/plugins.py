"""``kernel check-plugin`` and ``kernel new-plugin``: the commands for plugin authors."""
from __future__ import annotations

import re
import sys
from pathlib import Path

#: Placeholders in the template's files and paths, filled by ``kernel new-plugin``.
PLACEHOLDERS = ("name", "package", "distribution", "title")
TEMPLATE_SUFFIX = ".tmpl"


def register(cli):
    p = cli.command("check-plugin", "kernel.commands.plugins:check_plugin_cmd",
                    help="check a plugin's components against the plugin contract",
                    description="Build every component of a plugin with its defaults (or example= parameters) "
                                "and exercise it against the plugin contract (docs/hooks.md); a trainer trains "
                                "one epoch on small synthetic data in a temporary workspace.")
    p.add_argument("name", help="the plugin's name, as `kernel plugins` lists it")
    p.add_argument("--strict", action="store_true", help="fail on warnings (components not exercised) too")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p = cli.command("new-plugin", "kernel.commands.plugins:new_plugin_cmd",
                    help="write a new plugin distribution from the template",
                    description="Write a complete plugin distribution (pyproject, package, tests, README) "
                                "whose tests and `kernel check-plugin NAME` pass as generated.")
    p.add_argument("name", help="the plugin's name: lowercase letters, digits and _, e.g. acme")
    p.add_argument("--dir", help="the folder to write it to (default: ./kernel-NAME); must be empty or new")


def check_plugin_cmd(args):
    import json

    from ..catalog import get_catalog
    from ..testing import check_plugin, findings_as_dicts

    catalog = get_catalog(tuple(args.disabled))
    findings = check_plugin(args.name, catalog)
    checked = sum(1 for c in catalog.list() if c.plugin == args.name)
    errors = [f for f in findings if f.level == "error"]
    failed = bool(errors) or (args.strict and bool(findings))
    if args.json:
        print(json.dumps({"plugin": args.name, "ok": not failed, "components": checked,
                          "findings": findings_as_dicts(findings)}, indent=2))
        return 1 if failed else 0
    for f in findings:
        print(f)
    warnings = len(findings) - len(errors)
    verdict = "does not conform" if failed else "conforms"
    print(f"plugin {args.name} {verdict}: {len(errors)} error(s), {warnings} warning(s), "
          f"{checked} component(s) checked")
    return 1 if failed else 0


def template_dir() -> Path:
    """The plugin template: shipped in the wheel as ``kernel/plugin_template`` (a link to
    ``contrib/plugin-template`` in the source tree), or read from the checkout itself."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "plugin_template", here.parent / "contrib" / "plugin-template"):
        if (candidate / ("pyproject.toml" + TEMPLATE_SUFFIX)).is_file():
            return candidate
    from ..errors import KernelError

    raise KernelError("the plugin template is missing from this kernel installation "
                      "(kernel/plugin_template); reinstall the kernel")


def placeholders(name: str) -> dict[str, str]:
    from ..errors import KernelError

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise KernelError(f"plugin name {name!r}: use lowercase letters, digits and _, starting with a letter "
                          f"(it prefixes every component name: {name or 'acme'}.something)")
    if name == "kernel":
        raise KernelError("plugin name 'kernel' is the kernel's own; choose another")
    return {"name": name, "package": f"kernel_{name}", "distribution": f"kernel-{name}",
            "title": name.replace("_", " ").title()}


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def write_plugin(name: str, folder: Path | None = None) -> Path:
    """Write the distribution for plugin ``name`` into ``folder``; returns the folder."""
    from ..errors import KernelError

    values = placeholders(name)
    folder = Path(folder) if folder else Path.cwd() / values["distribution"]
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise KernelError(f"{folder} already exists and is not empty; choose another folder with --dir")
    source = template_dir()
    files = [p for p in sorted(source.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    for path in files:
        relative = fill(str(path.relative_to(source)), values)
        if relative.endswith(TEMPLATE_SUFFIX):
            relative = relative[: -len(TEMPLATE_SUFFIX)]
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = fill(path.read_text(encoding="utf-8"), values)
        left = re.findall(r"\{\{\w+\}\}", text)
        if left:  # a template typo: better to stop than to write a plugin that cannot work
            raise KernelError(f"template file {path} has unknown placeholders {sorted(set(left))}")
        target.write_text(text, encoding="utf-8")
    return folder


def new_plugin_cmd(args):
    folder = write_plugin(args.name, Path(args.dir).expanduser() if args.dir else None)
    values = placeholders(args.name)
    shown = folder if not folder.is_absolute() else _relative(folder)
    print(f"wrote plugin {args.name!r} (distribution {values['distribution']}, package {values['package']}) "
          f"to {shown}")
    print("next:")
    print(f"  pip install -e {shown}")
    print(f"  kernel list --tag {args.name}")
    print(f"  kernel check-plugin {args.name}")
    print(f"  python -m pytest {shown}/tests")
    sys.stdout.flush()
    return 0


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
