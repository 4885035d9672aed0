"""Parts of the page that plugins add (hook ``kernel_report_sections``): a tuning study's charts, ...

The kernel asks every loaded plugin for its sections, each on its own: a plugin whose hook raises,
or returns anything but a list of ``kernel.Section``, is marked broken (as for every hook, through
:meth:`kernel.plugins.PluginSet.call_each`) and becomes a warning on the page that names it; the
other plugins' sections and the rest of the page are built as usual.

The sections travel in the page's data (``plugin_sections``); the page's code (``assets/app.js``)
places each under its own heading, where the browser's parser keeps a fragment's markup inside
its section, and runs the fragment's inline scripts.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

HOOK = "kernel_report_sections"


def collect(runs, workspace: Path, plugins, page_scripts=()) -> dict:
    """Every plugin's sections for ``runs`` (:class:`kernel.store.Run`), as the page's data:
    ``{"key", "sections": [{"plugin", "id", "title", "html"}], "warnings": [text]}``.

    ``page_scripts``: the bodies of the scripts the page loads itself (plotly.js). A section that
    inlines one of them to work on its own gets that script left out: the page holds it once, and
    it is not run a second time over the page's charts.
    """
    infos = [copy.deepcopy(run.info) for run in runs]  # a plugin cannot change what the page shows
    sections, used = [], set()
    for plugin, result in plugins.call_each(HOOK, runs=infos, workspace=Path(workspace)):
        problem = _problem(result)
        if problem:
            plugins.mark_broken(plugin, f"hook {HOOK} returned {problem}")
            continue
        for number, section in enumerate(result or [], 1):
            sections.append({"plugin": plugin, "id": _anchor(plugin, number, used), "title": section.title,
                             "html": without_scripts(section.html, page_scripts)})
    data = {"sections": sections, "warnings": _warnings(plugins)}
    data["key"] = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return data


def _problem(result) -> str:
    """What is wrong with a hook's answer, or "" (None, pluggy's "nothing to say", is an empty list)."""
    from ..component import Section

    if result is None:
        return ""
    if not isinstance(result, (list, tuple)):
        return f"a {type(result).__name__}, not a list of kernel.Section"
    for item in result:
        if not isinstance(item, Section):
            return f"a list holding a {type(item).__name__}, not only kernel.Section"
        if not isinstance(item.title, str) or not isinstance(item.html, str):
            return f"a Section whose title and html are not both text ({item.title!r:.60})"
    return ""


def _warnings(plugins) -> list[str]:
    """One line per plugin with sections to give that is broken (its hook raised now or earlier,
    or another of its hooks did): the page says whose part is missing, and why."""
    out = []
    for impl in getattr(plugins.manager.hook, HOOK).get_hookimpls():
        info = plugins.infos.get(impl.plugin_name)
        if info is not None and info.status == "broken":
            out.append(f"plugin {info.name!r} ({info.distribution}) is broken, its part of the page is left out: "
                       f"{info.error}")
    return out


def _anchor(plugin: str, number: int, used: set) -> str:
    """A stable element id for a section (``plugin-tuning-1``): the same on every rebuild."""
    anchor = "plugin-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", plugin).strip("-") or "x") + f"-{number}"
    while anchor in used:
        anchor += "-"
    used.add(anchor)
    return anchor


_SCRIPT_OPEN = re.compile(r"<script\b[^>]*>\Z", re.IGNORECASE)


def without_scripts(html: str, bodies) -> str:
    """``html`` without the inline ``<script>`` elements whose whole text is one of ``bodies``."""
    for body in bodies:
        if not body:
            continue
        start = html.find(body)
        while start >= 0:
            tag_start = html.rfind("<", 0, start)
            end = start + len(body)
            tag = html[tag_start:start] if tag_start >= 0 else ""
            if (_SCRIPT_OPEN.match(tag) and " src" not in tag.lower()
                    and html[end:end + 9].lower() == "</script>"):
                html = html[:tag_start] + html[end + 9:]
                start = html.find(body, tag_start)
            else:
                start = html.find(body, end)
    return html


def workspace_of(runs) -> Path:
    """The workspace whose store holds ``runs`` (``<workspace>/runs/<id>``); the current one
    (``$KERNEL_HOME``, else the working directory) for runs from elsewhere or from several stores."""
    from ..artifacts import workspace

    stores = {Path(run.dir).parent for run in runs}
    if len(stores) == 1:
        (store,) = stores
        if store.name == "runs":
            return store.parent
    return workspace()
