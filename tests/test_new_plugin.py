"""`kernel new-plugin` writes a plugin distribution that installs, conforms and passes its own tests.

The generated plugin is pip-installed into a folder of its own (``pip install --target``) that only
these tests' subprocesses see, so a plugin called plainly ``acme`` cannot show up in anyone else's
``kernel list`` while the tests run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([*map(str, args)], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def kernel(*args, cwd=None, env=None):
    return run(sys.executable, "-m", "kernel.cli", *args, cwd=cwd, env=env)


def with_path(*folders) -> dict:
    return {"PYTHONPATH": os.pathsep.join([*map(str, folders), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """`kernel new-plugin acme` in an empty folder, then the result pip-installed into its own site folder."""
    work = tmp_path_factory.mktemp("new-plugin")
    made = kernel("new-plugin", "acme", cwd=work)
    assert made.returncode == 0, made.stderr
    source, site = work / "kernel-acme", work / "site"
    written = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    installed = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", site, source)
    assert installed.returncode == 0, installed.stderr
    return source, with_path(site), written


def test_the_plugin_is_written_complete(acme):
    source, _, written = acme
    assert written == ["README.md", "kernel_acme/__init__.py", "kernel_acme/analyzers.py", "kernel_acme/datasets.py",
                     "kernel_acme/examples/acme.toml", "kernel_acme/metrics.py", "kernel_acme/models.py",
                     "kernel_acme/plugin.py", "kernel_acme/transforms.py", "pyproject.toml", "tests/test_acme.py"]
    for name in written:
        path = source / name
        assert "{{" not in path.read_text(), f"placeholder left in {path}"
    pyproject = (source / "pyproject.toml").read_text()
    assert 'name = "kernel-acme"' in pyproject and '[project.entry-points.kernel]\nacme = "kernel_acme.plugin"' in pyproject


@pytest.mark.slow
def test_the_installed_plugin_passes_check_plugin(acme):
    _, env, _ = acme
    checked = kernel("check-plugin", "acme", "--strict", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "plugin acme conforms: 0 error(s), 0 warning(s)" in checked.stdout


@pytest.mark.slow
def test_the_generated_tests_pass(acme):
    source, env, _ = acme
    proc = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=source, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "5 passed" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["new-plugin", "Acme-1"], "plugin name 'Acme-1': use lowercase letters, digits and _"),
    (["new-plugin", "kernel"], "plugin name 'kernel' is the kernel's own"),
    (["new-plugin", "acme", "--dir", "."], "already exists and is not empty"),
    (["check-plugin", "acmee"], "no plugin named 'acmee'"),
])
def test_mistakes_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "something.txt").write_text("not empty")
    proc = kernel(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_template_ships_in_the_kernel_wheel(tmp_path):
    """An installed kernel (a wheel, not this checkout) still finds the template."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "kernel", src / "kernel", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "contrib" / "plugin-template", src / "contrib" / "plugin-template")
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
                src)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("kernel-*.whl")
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    assert (unpacked / "kernel" / "plugin_template" / "pyproject.toml.tmpl").is_file()
    env = with_path(unpacked)
    where = run(sys.executable, "-c", "import kernel; print(kernel.__file__)", env=env, cwd=tmp_path)
    assert where.stdout.strip() == str(unpacked / "kernel" / "__init__.py")  # the wheel's kernel, not the checkout's
    made = kernel("new-plugin", "ktest_wheel", "--dir", tmp_path / "out", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out" / "kernel_ktest_wheel" / "plugin.py").is_file()
