"""``kernel list``, ``kernel show`` and ``kernel plugins``: the catalog, read without importing torch."""
from __future__ import annotations

import inspect
import json


def register(cli):
    p = cli.command("list", "kernel.commands.catalog:list_cmd", help="list components, by kind and tag")
    p.add_argument("kind", nargs="?", help="one of " + ", ".join(f"{k}(s)" for k in cli.kinds))
    p.add_argument("--tag", help="only components with this tag (e.g. classification)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cli.command("show", "kernel.commands.catalog:show_cmd",
                    help="a component's parameters: types, defaults and docs")
    p.add_argument("name", help="a component name (vision.resnet18) or import path (torch.optim.AdamW)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cli.command("plugins", "kernel.commands.catalog:plugins_cmd",
                    help="installed plugins, their status and errors")
    p.add_argument("--json", action="store_true", help="print JSON")


def _catalog(args):
    from ..catalog import get_catalog

    return get_catalog(tuple(args.disabled))


def list_cmd(args):
    from ..catalog import normalize_kind

    cat = _catalog(args)
    kind = normalize_kind(args.kind, cat.kinds) if args.kind else None
    comps = cat.list(kind, args.tag)
    if args.json:
        print(json.dumps([{"name": c.name, "kind": c.kind, "plugin": c.plugin, "summary": c.summary,
                           "tags": list(c.tags)} for c in comps], indent=2))
        return 0
    if not comps:
        print(f"no {kind or 'component'}s" + (f" tagged {args.tag!r}" if args.tag else ""))
        return 0
    from ..console import print_columns

    print_columns(["name", "kind", "tags", "summary"], [[c.name, c.kind, ", ".join(c.tags), c.summary] for c in comps])
    _warn_broken(cat.plugins)
    return 0


def _warn_broken(plugins):
    import sys

    broken = [i for i in plugins.infos.values() if i.status == "broken"]
    for info in broken:
        print(f"warning: plugin {info.name} ({info.distribution}) is broken: {info.error}; "
              f"see `kernel plugins`", file=sys.stderr)


def show_cmd(args):
    cat = _catalog(args)
    comp = cat.get(args.name)
    target = cat.target(comp)
    params = cat.params(comp)
    doc = inspect.getdoc(target) or ""
    summary = comp.summary or (doc.splitlines()[0] if doc else "")
    if args.json:
        print(json.dumps({"name": comp.name, "kind": comp.kind, "plugin": comp.plugin,
                          "target": comp.target if isinstance(comp.target, str) else repr(comp.target),
                          "summary": summary, "tags": list(comp.tags),
                          "params": [{"name": p.name, "type": p.type_name,
                                      "default": None if p.required else _jsonable(p.default),
                                      "required": p.required, "doc": p.doc} for p in params]}, indent=2))
        return 0
    from ..console import console as make_console
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    console.print(f"[bold]{escape(comp.name)}[/bold]  ({comp.kind or 'import path'}, from {escape(comp.plugin)})")
    if summary:
        console.print(escape(summary))  # a plugin's text is shown as written: "[tuning]" is not markup
    target_text = comp.target if isinstance(comp.target, str) else getattr(comp.target, "__qualname__", "")
    console.print(f"target: {target_text}", highlight=False)
    if comp.tags:
        console.print("tags: " + ", ".join(comp.tags))
    table = Table(box=None, pad_edge=False)
    for col in ("parameter", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for p in params:
        table.add_row(p.name, escape(p.type_name), escape("(required)" if p.required else repr(p.default)),
                      escape(p.doc))
    console.print(table if params else "no parameters")
    return 0


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def plugins_cmd(args):
    from ..plugins import fused_ops_status

    cat = _catalog(args)
    infos = list(cat.plugins.infos.values())
    conflicts = {name: [cat.plugins.distribution(p) for p in owners] for name, owners in cat.conflicts.items()}
    if args.json:
        print(json.dumps({"plugins": [{"name": i.name, "distribution": i.distribution, "version": i.version,
                                       "status": i.status, "error": i.error, "components": i.components,
                                       "kinds": cat.plugins.declared_by(i.name)}
                                      for i in infos], "conflicts": conflicts,
                          "fused_ops": fused_ops_status(tuple(args.disabled))}, indent=2))
        return 0
    from ..console import console as make_console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    columns = ["plugin", "distribution", "version", "status", "components", "error"]
    declares = bool(cat.plugins.declared)
    if declares:  # the column only when a plugin declares a kind of component (kernel_kinds)
        columns.insert(5, "declares kinds")
    for col in columns:
        table.add_column(col, overflow="fold")
    for i in infos:
        style = {"broken": "red", "disabled": "yellow"}.get(i.status, "")
        row = [i.name, i.distribution, i.version, f"[{style}]{i.status}[/]" if style else i.status,
               str(i.components) if i.status == "loaded" else "", escape(i.error)]
        if declares:
            row.insert(5, ", ".join(cat.plugins.declared_by(i.name)))
        table.add_row(*row)
    console = make_console()
    console.print(table)
    for name, dists in conflicts.items():
        console.print(f"[red]conflict[/]: component {name!r} is offered by {' and '.join(dists)}")
    console.print(escape(fused_ops_line(fused_ops_status(tuple(args.disabled)))))
    return 0


def fused_ops_line(info: dict) -> str:
    """One line on the optional operator library (contrib/fused-ops) under the plugin table."""
    if not info["installed"]:
        return ("fused operators: kernel-fused-ops is not installed; the pure-PyTorch references run "
                "(pip install contrib/fused-ops builds it)")
    devices = " and ".join(info.get("devices") or []) or "no"
    line = f"fused operators: kernel-fused-ops {info['version']}, {devices} kernels"
    if info.get("cuda_skipped"):
        line += f" (CUDA not built: {info['cuda_skipped']})"
    if info.get("disabled"):
        line += "; turned off (KERNEL_DISABLE_PLUGINS=fused_ops or -p no:fused_ops): the references run"
    return line
