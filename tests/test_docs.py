"""The plugin author guide is run, not just read: its files are written out and installed as a real
plugin, every `kernel` command it shows runs with the output it shows, the plugin's own tests pass,
and its loose snippets execute."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugin-guide.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", GUIDE, re.S | re.M)
FILE_MARK = re.compile(r"^# file: (\S+)\n")


def files() -> dict[str, str]:
    """The guide's files, by path (blocks whose first line is `# file: PATH`)."""
    return {m.group(1): text for _, text in BLOCKS if (m := FILE_MARK.match(text))}


def console_steps() -> list[tuple[str, list[str]]]:
    """Each `$ command` of the console blocks with the output lines shown under it."""
    steps: list[tuple[str, list[str]]] = []
    for lang, text in BLOCKS:
        if lang != "console":
            continue
        for line in text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip():
                steps[-1][1].append(line)
    return steps


def run(args, cwd, env=None):
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)


def test_the_guide_has_a_complete_plugin():
    shown = files()
    assert {"pyproject.toml", "kernel_waves/plugin.py", "kernel_waves/datasets.py", "kernel_waves/transforms.py",
            "kernel_waves/models.py", "kernel_waves/renderers.py", "tests/test_waves.py"} <= set(shown)
    assert '[project.entry-points.kernel]\nwaves = "kernel_waves.plugin"' in shown["pyproject.toml"]
    assert [cmd for cmd, _ in console_steps()][:2] == ["kernel new-plugin waves", "pip install -e kernel-waves"]


@pytest.mark.slow
def test_the_worked_example_installs_checks_and_runs(tmp_path):
    work, site, fresh = tmp_path / "work", tmp_path / "site", tmp_path / "fresh"
    fresh.mkdir()
    plugin = work / "kernel-waves"
    for path, text in files().items():
        (plugin / path).parent.mkdir(parents=True, exist_ok=True)
        (plugin / path).write_text(text)
    # `pip install -e` in the guide; here into a folder only these subprocesses see
    installed = run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                     "--target", str(site), str(plugin)], cwd=work)
    assert installed.returncode == 0, installed.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    ran = 0
    for command, shown in console_steps():
        if not command.startswith("kernel "):
            continue
        # `kernel new-plugin` writes into an empty folder; the rest runs beside the written plugin
        cwd = fresh if command.startswith("kernel new-plugin") else work
        proc = run([sys.executable, "-m", "kernel.cli", *command.split()[1:]], cwd=cwd, env=env)
        assert proc.returncode == 0, f"$ {command}\n{proc.stdout}\n{proc.stderr}"
        for line in shown:
            assert line in proc.stdout, f"$ {command} did not print {line!r}:\n{proc.stdout}"
        if "--dry-run" in command:
            assert "waves.conv" in proc.stdout and "in_channels=1, num_classes=3" in proc.stdout
            assert "input -> waves.waveform" in proc.stdout
        ran += 1
    assert ran == 3
    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "kernel-waves"], cwd=work, env=env)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "2 passed" in tests.stdout


def test_the_guide_snippets_run():
    from kernel import Component, hookimpl
    from kernel.cli import CLI

    snippets = [text for lang, text in BLOCKS if lang == "python" and not FILE_MARK.match(text)]
    assert len(snippets) == 2
    namespace = {"Component": Component, "hookimpl": hookimpl}
    for text in snippets:
        exec(compile(text, "plugin-guide.md", "exec"), namespace)
    cli = CLI(argparse.ArgumentParser().add_subparsers())
    namespace["kernel_commands"](cli)
    assert cli.targets == {"waves-stats": "kernel_waves.commands:stats"}
