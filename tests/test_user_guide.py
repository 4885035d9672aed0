"""The examples in the user guide and the README are run, so the docs cannot drift from the code."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / doc).read_text(), re.S)


def test_the_guide_workflow_file_builds(cli, tmp_path):
    (toml,) = blocks("docs/user-guide.md", "toml")
    path = tmp_path / "tour.toml"
    path.write_text(toml)
    proc = cli("run", "--dry-run", path)
    assert proc.returncode == 0, proc.stderr
    assert "mlp-wide" in proc.stdout and "num_classes=3" in proc.stdout


def test_the_guide_python_example_runs(workspace):
    (code,) = blocks("docs/user-guide.md", "python")
    namespace: dict = {}
    exec(compile(code, "user-guide.md", "exec"), namespace)
    assert namespace["filled"] == {"input_shape": (8,), "num_classes": 4}


def test_the_guide_lists_every_cli_command(cli):
    guide = (ROOT / "docs/user-guide.md").read_text()
    helptext = cli("--help").stdout
    commands = re.search(r"\{([^}]*)\}", helptext)
    names = commands.group(1).split(",") if commands else re.findall(r"^    (\S+)\s", helptext, re.M)
    assert names
    for name in names:
        assert f"`kernel {name}" in guide, f"kernel {name} is not in docs/user-guide.md"


def test_the_readme_workflow_builds(cli, tmp_path):
    pytest.importorskip("plugin_vision")
    (toml,) = blocks("README.md", "toml")
    path = tmp_path / "readme.toml"
    path.write_text(toml)
    proc = cli("run", "--dry-run", path, "--set", "dataset.fraction=0.1")
    assert proc.returncode == 0, proc.stderr
