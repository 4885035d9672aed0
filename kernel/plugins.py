"""Finding plugins through entry points, and keeping a broken one from breaking the rest.

Plugins are loaded one by one; one that fails to import, or whose hook raises, is remembered with
its error (``kernel plugins`` shows it) and left out. Disabled plugins are never imported.
"""
from __future__ import annotations

import os
import sys
import traceback
import types
from dataclasses import dataclass, field, replace
from importlib import metadata

import pluggy

from . import hookspecs
from .component import KINDS, Kind

GROUP = "kernel"
BUILTIN = "kernel"


@dataclass
class PluginInfo:
    """What the kernel knows about one plugin, loaded or not."""

    name: str
    distribution: str
    version: str = ""
    status: str = "loaded"  # loaded | disabled | broken
    error: str = ""
    details: str = ""  # the traceback of the error, for --debug
    components: int = 0


@dataclass
class PluginSet:
    """The loaded plugins (in a pluggy manager) and what happened to every other one."""

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    declared: dict[str, Kind] = field(default_factory=dict)  # the kinds plugins declare, by name

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind of component, built-in first; a declared kind only while its plugin is loaded."""
        return KINDS + tuple(name for name, kind in self.declared.items()
                             if self.infos[kind.plugin].status == "loaded")

    def declared_by(self, plugin: str) -> list[str]:
        """The names of the kinds ``plugin`` declares."""
        return [name for name, kind in self.declared.items() if kind.plugin == plugin]

    def call_each(self, hook_name: str, **kwargs):
        """Call a hook on every plugin separately, yielding ``(plugin name, result)``.

        A plugin whose hook raises is marked broken and skipped, so the others still answer.
        """
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order (pluggy itself calls the last first)
            name = impl.plugin_name
            if self.infos.get(name) and self.infos[name].status != "loaded":
                continue
            if _tracing():
                print(f"[kernel trace] {hook_name}() -> plugin {name}", file=sys.stderr)
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:  # a plugin's bug must not take the kernel down
                self.mark_broken(name, f"hook {hook_name} raised {type(exc).__name__}: {exc}",
                                 traceback.format_exc())
                continue
            yield name, result

    def declare_kinds(self):
        """Each plugin's ``kernel_kinds``: a hook spec per new kind, so that other plugins fill it
        (as pytest's ``pytest_addhooks``). Called once every plugin is registered."""
        for plugin, result in self.call_each("kernel_kinds"):
            problem, kinds = self._kind_problem(result)
            if problem:
                self.mark_broken(plugin, f"hook kernel_kinds: {problem}")
                continue
            for kind in kinds:
                kind = self.declared[kind.name] = replace(kind, plugin=plugin)
                self._add_spec(kind)

    def _kind_problem(self, result) -> tuple[str, list]:
        """What is wrong with what a plugin's ``kernel_kinds`` returned ("" when nothing), and its kinds."""
        if not isinstance(result, (list, tuple)) or not all(isinstance(k, Kind) for k in result):
            return f"returned {result!r}, not a list of kernel.Kind", []
        owners = {**{name: "the kernel" for name in KINDS},
                  **{name: f"plugin {kind.plugin!r}" for name, kind in self.declared.items()}}
        for kind in result:
            # a kind is also named by its plural (`kernel list attributions`): neither may be taken
            taken = [n for n in owners if {n, n + "s"} & {kind.name, kind.name + "s"}]
            if taken:
                return (f"kind {kind.name!r} clashes with kind {taken[0]!r} of {owners[taken[0]]}; "
                        f"give the kind another name"), []
            caller = getattr(self.manager.hook, kind.hook, None)
            if caller is not None and caller.has_spec():
                return (f"kind {kind.name!r} would be filled by {kind.hook}, a hook of the kernel already; "
                        f"give the kind another name"), []
            owners[kind.name] = "this plugin (declared twice)"
        return "", list(result)

    def _add_spec(self, kind: Kind):
        """The hook spec of a declared kind: ``kernel_<name>s()`` with the kind's doc, in a module of its own.

        pluggy checks the implementations registered before the spec existed, but stops at the first
        that does not fit; so each is first checked alone, and a plugin whose implementation takes
        arguments is marked broken and unregistered before the spec is added.
        """
        def spec():
            pass

        spec.__name__ = spec.__qualname__ = kind.hook
        spec.__doc__ = kind.doc
        module = types.ModuleType(f"kernel.kinds.{kind.name}", f"The hook of kind {kind.name!r} (plugin {kind.plugin}).")
        setattr(module, kind.hook, hookspecs.hookspec(spec))
        caller = getattr(self.manager.hook, kind.hook, None)
        for impl in list(caller.get_hookimpls()) if caller else []:
            trial = pluggy.PluginManager(GROUP)
            trial.add_hookspecs(module)
            try:
                trial.register(impl.plugin, name=impl.plugin_name)
            except pluggy.PluginValidationError as exc:
                why = (f"takes no argument, but this plugin's takes {', '.join(impl.argnames)}: define it as "
                       f"{kind.hook}()") if impl.argnames else str(exc).splitlines()[-1]
                self.mark_broken(impl.plugin_name, f"hook {kind.hook} (kind {kind.name!r} of plugin {kind.plugin}) {why}")
                self.manager.unregister(name=impl.plugin_name)
        self.manager.add_hookspecs(module)

    def mark_broken(self, name: str, error: str, details: str = ""):
        info = self.infos.setdefault(name, PluginInfo(name, name))
        info.status, info.error, info.details = "broken", error, details

    def distribution(self, plugin_name: str) -> str:
        info = self.infos.get(plugin_name)
        return info.distribution if info else plugin_name


def _tracing() -> bool:
    return os.environ.get("KERNEL_TRACE_PLUGINS", "") not in ("", "0")


def disabled_names(extra: list[str] | tuple = ()) -> set[str]:
    """Plugins turned off by ``KERNEL_DISABLE_PLUGINS=a,b`` and by ``-p no:NAME`` options."""
    names = {n.strip() for n in os.environ.get("KERNEL_DISABLE_PLUGINS", "").split(",")}
    names.update(extra)
    return {n for n in names if n}


def load_plugins(disable: list[str] | tuple = ()) -> PluginSet:
    """Register the built-in plugin and every installed plugin that is not disabled."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    if _tracing():
        manager.trace.root.setwriter(lambda msg: sys.stderr.write("[kernel trace] " + msg))
        manager.enable_tracing()
    plugins = PluginSet(manager)
    disabled = disabled_names(disable)

    from .builtin import plugin as builtin_plugin

    manager.register(builtin_plugin, name=BUILTIN)
    plugins.infos[BUILTIN] = PluginInfo(BUILTIN, "kernel", _version("kernel"))

    # by plugin name, then distribution name: when two distributions claim one name, the same one
    # is kept on every machine, whatever order the environment lists them in
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name, _dist_name(e))):
        dist = _dist_name(ep)
        version = ep.dist.version if ep.dist else ""
        info = PluginInfo(ep.name, dist, version)
        first = plugins.infos.get(ep.name)
        if first is not None:
            # the first claim stands; the second is listed beside it (under its own key), not loaded
            info.status = "broken"
            info.error = (f"plugin name {ep.name!r} is already taken by {first.distribution}; this "
                          f"plugin of {dist} is not loaded (rename its entry point, or uninstall one)")
            plugins.infos[f"{ep.name} ({dist})"] = info
            continue
        plugins.infos[ep.name] = info
        if ep.name in disabled:
            info.status = "disabled"
            continue
        try:
            obj = ep.load()
            manager.register(obj, name=ep.name)
        except Exception as exc:  # import errors, typos in hookimpl names, anything
            plugins.mark_broken(ep.name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    plugins.declare_kinds()
    return plugins


def _dist_name(ep) -> str:
    return ep.dist.name if ep.dist else ep.name


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


# -- the optional operator library (contrib/fused-ops) ------------------------------------------------------
# Not a plugin (it adds no components): kernel.fused loads it when installed, and it is turned off
# by the same switch as a plugin, KERNEL_DISABLE_PLUGINS=fused_ops.
FUSED_DISTRIBUTION, FUSED_PACKAGE, FUSED_SWITCH = "kernel-fused-ops", "kernel_fused_ops", "fused_ops"


def fused_ops_status(disable: list[str] | tuple = ()) -> dict:
    """Whether the fused operator library is installed, its version, the device kernels it was built
    with (its ``build.json``) and whether it is turned off; read without importing torch."""
    import importlib.util
    import json

    spec = importlib.util.find_spec(FUSED_PACKAGE)
    try:
        version = metadata.version(FUSED_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    if spec is None or version is None:
        return {"installed": False}
    info = {"installed": True, "version": version, "disabled": FUSED_SWITCH in disabled_names(disable),
            "devices": []}
    build = os.path.join(os.path.dirname(spec.origin or ""), "build.json")
    if os.path.isfile(build):
        with open(build, encoding="utf-8") as f:
            info.update(json.load(f))
    return info
