"""Kinds of component that plugins declare (hook ``kernel_kinds``): one plugin declares a kind, any
plugin fills it through its own hook, and the catalog, ``kernel list/show/plugins`` and ``kernel
check-plugin`` treat it like a built-in kind. Every plugin here is a real one, found through its
entry point by the real ``kernel`` command."""
from __future__ import annotations

import json

import pytest

DECLARES = """
from kernel import Component, Kind, hookimpl

def check_scorer(obj):
    if getattr(obj, "explode", False):
        raise RuntimeError("cannot look at it")
    return [] if callable(getattr(obj, "attribute", None)) else ["it has no attribute(inputs) method"]

class Plain:
    def attribute(self, inputs):
        return inputs

@hookimpl
def kernel_kinds():
    return [Kind("scorer", doc="Return the scorers the plugin offers: target(**params) has attribute(inputs).",
                 check="ktest_kdecl_plugin:check_scorer")]

@hookimpl
def kernel_scorers():
    return [Component("kdecl.plain", "ktest_kdecl_plugin:Plain", summary="the declaring plugin's own scorer")]
"""

FILLS = """
from kernel import Component, hookimpl

class Weighted:
    def __init__(self, weight: float = 1.0):
        '''
        Args:
            weight: what each input is multiplied by.
        '''
        self.weight = weight
    def attribute(self, inputs):
        return inputs * self.weight

class Sized(Weighted):
    def __init__(self, size: int):
        self.size = size

class NoMethod:
    pass

class Exploding:
    explode = True

@hookimpl
def kernel_scorers():
    return [Component("kfill.weighted", "ktest_kfill_plugin:Weighted", summary="weights each input"),
            Component("kfill.sized", "ktest_kfill_plugin:Sized", example={"size": 3, "_dataset": "kernel.synthetic"}),
            Component("kfill.nomethod", "ktest_kfill_plugin:NoMethod"),
            Component("kfill.exploding", "ktest_kfill_plugin:Exploding")]
"""


def listed(cli, env, *args):
    proc = cli("list", *args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {c["name"]: c["kind"] for c in json.loads(proc.stdout)}


def plugins(cli, env) -> dict:
    return {p["name"]: p for p in json.loads(cli("plugins", "--json", env=env).stdout)["plugins"]}


def test_a_declared_kind_is_filled_by_another_plugin_and_listed_like_any(cli, fake_plugin):
    fake_plugin("kdecl", DECLARES)
    env = fake_plugin("kfill", FILLS)
    scorers = {"kdecl.plain": "scorer", "kfill.weighted": "scorer", "kfill.sized": "scorer",
               "kfill.nomethod": "scorer", "kfill.exploding": "scorer"}
    assert listed(cli, env, "scorers") == listed(cli, env, "scorer") == scorers
    everything = listed(cli, env)
    assert scorers.items() <= everything.items() and everything["kernel.mlp"] == "model"
    shown = json.loads(cli("show", "kfill.weighted", "--json", env=env).stdout)
    assert (shown["kind"], shown["plugin"]) == ("scorer", "kfill")
    assert shown["params"][0]["doc"] == "what each input is multiplied by."
    assert "(scorer, from kfill)" in cli("show", "kfill.weighted", env=env).stdout
    # the kinds are in `kernel list --help`, and `kernel plugins` says who declares which
    help_text = " ".join(cli("list", "--help", env=env).stdout.split())
    assert "callback(s), section(s), " in help_text and ", scorer(s)" in help_text
    info = plugins(cli, env)
    assert (info["kdecl"]["kinds"], info["kfill"]["kinds"], info["kernel"]["kinds"]) == (["scorer"], [], [])
    assert info["kfill"]["components"] == 4
    assert "declares kinds" in cli("plugins", env=env).stdout


def test_a_misspelt_kind_gets_a_suggestion_among_every_kind(cli, fake_plugin):
    env = fake_plugin("kdecl", DECLARES)
    proc = cli("list", "scorrers", env=env)
    assert proc.returncode == 2
    assert "unknown kind 'scorrers' (did you mean 'scorers'?)" in proc.stderr
    assert "kinds are: datasets, transforms, models" in proc.stderr and proc.stderr.rstrip().endswith("scorers")


def test_a_kind_of_a_disabled_plugin_does_not_exist(cli, fake_plugin):
    fake_plugin("kdecl", DECLARES)
    env = fake_plugin("kfill", FILLS)
    proc = cli("-p", "no:kdecl", "list", "scorers", env=env)
    assert proc.returncode == 2 and "unknown kind 'scorers'" in proc.stderr
    assert not [n for n in listed(cli, {**env, "KERNEL_DISABLE_PLUGINS": "kdecl"}) if n.startswith("kfill.")]
    # the filling plugin is not broken: the kind it fills is missing, which check-plugin says
    proc = cli("-p", "no:kdecl", "check-plugin", "kfill", "--json", env=env)
    messages = [(f["level"], f["message"]) for f in json.loads(proc.stdout)["findings"]]
    assert proc.returncode == 0, messages
    assert ("warning", "kernel_scorers belongs to a kind 'scorer' that no loaded plugin declares (kernel_kinds), "
                       "so it is never called; install or enable the plugin that declares it (see `kernel plugins`)") \
        in messages


@pytest.mark.parametrize("name, declared, error", [
    ("kbuiltin", 'Kind("model", doc="models again")',
     "hook kernel_kinds: kind 'model' clashes with kind 'model' of the kernel; give the kind another name"),
    ("kplural", 'Kind("scorers", doc="scorers again")',
     "hook kernel_kinds: kind 'scorers' clashes with kind 'scorer' of plugin 'kdecl'; give the kind another name"),
    ("ktwin", 'Kind("scorer", doc="a second scorer kind")',
     "hook kernel_kinds: kind 'scorer' clashes with kind 'scorer' of plugin 'kdecl'; give the kind another name"),
    ("khook", 'Kind("method", doc="methods")',
     "hook kernel_kinds: kind 'method' would be filled by kernel_methods, a hook of the kernel already; "
     "give the kind another name"),
    ("kname", 'Kind("Scorer", doc="capitals")',
     "hook kernel_kinds raised ValueError: Kind name must be a lowercase identifier in the singular "
     "('attribution'), not 'Scorer'"),
    ("knotkind", '"scorer"', "hook kernel_kinds: returned ['scorer'], not a list of kernel.Kind"),
])
def test_a_bad_declaration_breaks_only_the_declaring_plugin(cli, fake_plugin, name, declared, error):
    """Clashes with a built-in kind, another plugin's kind (its plural too) or a kernel hook, a bad
    name, an item that is not a Kind: that plugin is broken with the reason; the rest works."""
    fake_plugin("kdecl", DECLARES)
    env = fake_plugin(name, f"""
        from kernel import Component, Kind, hookimpl

        @hookimpl
        def kernel_kinds():
            return [{declared}]

        @hookimpl
        def kernel_metrics():
            return [Component("{name}.metric", "ktest_{name}_plugin:Metric")]
        """)
    info = plugins(cli, env)
    assert (info[name]["status"], info[name]["error"]) == ("broken", error)
    assert info["kdecl"]["status"] == "loaded" and info["kdecl"]["kinds"] == ["scorer"]
    everything = listed(cli, env)
    assert everything["kdecl.plain"] == "scorer" and everything["kernel.accuracy"] == "metric"
    assert f"{name}.metric" not in everything


ARGUMENTS = """
from kernel import Component, hookimpl

@hookimpl
def kernel_scorers(size):
    return [Component("{name}.sized", "ktest_{name}_plugin:Sized")]
"""


def test_an_implementation_with_arguments_breaks_its_own_plugin(cli, fake_plugin):
    """pluggy's check of a hook spec added late: each implementation is checked, not just up to the
    first that does not fit (kargs before and kzargs after the good plugins, by name)."""
    fake_plugin("kdecl", DECLARES)
    fake_plugin("kfill", FILLS)
    fake_plugin("kargs", ARGUMENTS.replace("{name}", "kargs"))
    env = fake_plugin("kzargs", ARGUMENTS.replace("{name}", "kzargs"))
    info = plugins(cli, env)
    for name in ("kargs", "kzargs"):
        assert (info[name]["status"], info[name]["error"]) == (
            "broken", "hook kernel_scorers (kind 'scorer' of plugin kdecl) takes no argument, but this plugin's "
                      "takes size: define it as kernel_scorers()")
    assert info["kdecl"]["status"] == info["kfill"]["status"] == "loaded"
    assert {"kdecl.plain", "kfill.weighted"} <= set(listed(cli, env, "scorers"))


def test_check_plugin_builds_each_component_and_runs_the_kinds_check(cli, fake_plugin):
    fake_plugin("kdecl", DECLARES)
    env = fake_plugin("kfill", FILLS)
    proc = cli("check-plugin", "kfill", "--json", env=env)
    found = [(f["component"], f["kind"], f["level"], f["message"]) for f in json.loads(proc.stdout)["findings"]]
    assert proc.returncode == 1
    assert sorted(found) == [
        ("kfill.exploding", "scorer", "error", "the check of kind 'scorer' (plugin kdecl) raised RuntimeError: "
                                               "cannot look at it"),
        ("kfill.nomethod", "scorer", "error", "it has no attribute(inputs) method"),
    ]  # kfill.weighted (defaults) and kfill.sized (example, less the reserved key) build and pass
    assert "plugin kdecl conforms: 0 error(s), 0 warning(s), 1 component(s) checked" in \
        cli("check-plugin", "kdecl", env=env).stdout


def test_check_plugin_probes_the_hooks_of_declared_kinds_for_heavy_imports(cli, fake_plugin):
    fake_plugin("kdecl", DECLARES)
    env = fake_plugin("kheavyfill", """
        from kernel import Component, hookimpl

        @hookimpl
        def kernel_scorers():
            import json, torch  # in the hook: every `kernel list` would pay for it
            return [Component("kheavyfill.plain", "ktest_kdecl_plugin:Plain")]
        """)
    proc = cli("check-plugin", "kheavyfill", env=env)
    assert proc.returncode == 1
    assert "error: kheavyfill (plugin): importing ktest_kheavyfill_plugin and calling its hooks imports torch" \
        in proc.stdout


def test_a_kind_without_check_is_checked_by_building_alone(cli, fake_plugin):
    fake_plugin("kdecl", DECLARES.replace('check="ktest_kdecl_plugin:check_scorer"', "check=None"))
    env = fake_plugin("kfill", FILLS.replace('"ktest_kfill_plugin:Exploding")]', '"ktest_kfill_plugin:Missing")]'))
    proc = cli("check-plugin", "kfill", "--json", env=env)
    found = [(f["component"], f["message"]) for f in json.loads(proc.stdout)["findings"]]
    assert len(found) == 1 and found[0][0] == "kfill.exploding"
    assert "has no attribute 'Missing'" in found[0][1]


def guide_example() -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """docs/plugin-guide.md's "Declaring a new kind of component": its files (``py`` blocks whose first
    line names the file) and its ``$ kernel`` commands with the lines they print."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "plugin-guide.md").read_text()
    section = guide.split("## Declaring a new kind of component")[1].split("\n## ")[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M)
    files = {text.splitlines()[0][2:]: text for lang, text in blocks if lang == "py"}
    steps: list[tuple[str, list[str]]] = []
    for lang, text in blocks:
        for line in text.splitlines() if lang == "text" else []:
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(" ".join(line.split()))
    return files, steps


def test_the_guides_example_of_a_declared_kind_works_as_shown(cli, tmp_path):
    files, steps = guide_example()
    assert set(files) == {"kernel_colors/plugin.py", "kernel_colors/palettes.py", "kernel_sea/plugin.py"}
    site = tmp_path / "guide-site"
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    for name in ("colors", "sea"):
        info = site / f"kernel_{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: kernel-{name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[kernel]\n{name} = kernel_{name}.plugin\n")
    env = {"PYTHONPATH": str(site)}
    assert [command for command, _ in steps] == ["kernel list palettes", "kernel check-plugin sea"]
    for command, shown in steps:
        proc = cli(*command.split()[1:], env=env)
        assert proc.returncode == 0, f"$ {command}\n{proc.stdout}\n{proc.stderr}"
        printed = [" ".join(line.split()) for line in proc.stdout.splitlines()]
        assert all(line in printed for line in shown), f"$ {command} did not print {shown}:\n{proc.stdout}"
    assert json.loads(cli("show", "sea.blues", "--json", env=env).stdout)["kind"] == "palette"
    assert plugins(cli, env)["colors"]["kinds"] == ["palette"]
    # the check runs: a palette that is not one is an error
    (site / "kernel_sea/plugin.py").write_text(files["kernel_sea/plugin.py"].replace('"#08306b"', '"navy"'))
    proc = cli("check-plugin", "sea", env=env)
    assert proc.returncode == 1 and "error: sea.blues (palette): 'navy' is not a '#rrggbb' colour" in proc.stdout
    proc = cli("-p", "no:colors", "check-plugin", "sea", env=env)
    assert proc.returncode == 0 and "kernel_palettes belongs to a kind 'palette' that no loaded plugin" in proc.stdout
