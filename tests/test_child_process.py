"""The benchmarks' child processes start from any working folder: `python -m studio` put the
working folder first on the import path, and a folder named `studio` there shadowed the studio
("cannot import name '__version__' from 'studio' (unknown location)")."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from studio.dev import bench_stall
from studio.dev.bench import measure_launch
from studio.dev.child_process import python_code, python_module

ROOT = Path(__file__).resolve().parents[1]

# As setuptools' editable install finds the studio: a finder after the path's on sys.meta_path
# (for the package and its immediate children), so an empty `studio` folder on the path (a
# namespace package) is found first. Put before the shared venv's own editable finder.
EDITABLE_FINDER = f"""
import importlib.machinery, importlib.util, sys

PACKAGE = {str(ROOT / "studio")!r}

class StudioFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "studio":
            return importlib.util.spec_from_file_location(name, PACKAGE + "/__init__.py",
                                                          submodule_search_locations=[PACKAGE])
        if name.rpartition(".")[0] == "studio":
            return importlib.machinery.PathFinder.find_spec(name, [PACKAGE])
        return None

sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder) + 1, StudioFinder)
"""


@pytest.fixture(params=["empty folder, editable install", "package folder"])
def shadowing_folder(request, tmp_path, monkeypatch):
    """The working folder holds a `studio` folder: empty while the studio is an editable install
    (the studio is not on sys.path, a finder adds it), or a package of its own."""
    folder = tmp_path / "home"
    (folder / "studio").mkdir(parents=True)
    if request.param == "package folder":
        (folder / "studio" / "__init__.py").write_text("raise ImportError('the wrong studio')\n")
    else:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(EDITABLE_FINDER)
        monkeypatch.setenv("PYTHONPATH", str(site))  # the studio itself only through the finder
    monkeypatch.chdir(folder)
    plain = subprocess.run([sys.executable, "-m", "studio", "--version"], capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0, "the folder should shadow the studio for a plain `python -m studio`"
    return folder


def test_module_and_code_commands_find_the_studio_not_the_folder(shadowing_folder):
    version = subprocess.run(python_module("studio", "--version"), capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("studio ")
    code = "import studio, sys; print(studio.__file__, sys.argv[1:])"
    found = subprocess.run(python_code(code, "a", "b"), capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(ROOT / "studio" / "__init__.py"), "['a',", "'b']"]


def test_bench_launch_opens_the_window_from_such_a_folder(shadowing_folder, studio_home):
    assert len(measure_launch(1)) == 1  # raises "the window did not open" when shadowed


@pytest.mark.parametrize("shadowing_folder", ["empty folder, editable install"], indirect=True)
def test_bench_stall_cold_start_runs_from_such_a_folder(shadowing_folder):
    result = bench_stall.cold_stall_in_fresh_process(size=64, steps=2)
    assert result["outcome"] == "finished" and result["first_generation"]["samples"] > 0


def test_every_child_python_is_started_through_child_process():
    """A new `sys.executable` command elsewhere in the studio would bring the shadowing back."""
    offenders = []
    for path in (ROOT / "studio").rglob("*.py"):
        if path.name == "child_process.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "executable" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
