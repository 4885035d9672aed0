"""Finding plugins through entry points, and keeping a broken one from breaking the rest.

Plugins are loaded one by one; one that fails to import, or whose hook raises, is remembered with
its error (``kernel plugins`` shows it) and left out. Disabled plugins are never imported.
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs

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
    return plugins


def _dist_name(ep) -> str:
    return ep.dist.name if ep.dist else ep.name


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""
