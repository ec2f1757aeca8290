"""A normal (non-editable) install ships resources/ and presets/ (issue 9, item 17).

.ci/run builds the wheel, installs it into a fresh venv and generates with the demo model;
these tests catch the usual ways that breaks before CI does."""

import sys
from pathlib import Path

import pytest

from studio.core.storage import paths

REPO = Path(__file__).resolve().parents[2]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the check is the same on every version


def _setuptools_config():
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_under_studio_is_listed_for_the_wheel():
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "studio").rglob("__init__.py")}
    listed = set(_setuptools_config()["packages"])
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert {"studio._resources", "studio._presets"} <= listed


def test_resources_and_presets_ship_whole_as_package_data():
    config = _setuptools_config()
    assert config["package-dir"] == {"studio._resources": "resources", "studio._presets": "presets"}
    for package in ("studio._resources", "studio._presets"):
        assert config["package-data"][package] == ["**/*"]  # subfolders too: demo-model/, clip-tokenizer/ ...
    assert (REPO / "resources" / "demo-model" / "model_index.json").is_file()


def test_installed_package_data_is_found_through_importlib(tmp_path, monkeypatch):
    # The layout a wheel installs: a regular package with a data folder (no __init__.py) in it.
    (tmp_path / "fakestudio" / "_resources" / "demo-model").mkdir(parents=True)
    (tmp_path / "fakestudio" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = paths._shipped_folder("fakestudio._resources", "resources")
    assert found == tmp_path / "fakestudio" / "_resources"
    sys.modules.pop("fakestudio", None)


def test_source_tree_is_used_when_the_package_data_is_not_installed():
    assert paths._shipped_folder("studio._not_installed", "resources") == REPO / "resources"
    assert paths.resources_dir().resolve() == (REPO / "resources").resolve()
    assert (paths.builtin_presets_dir() / "demo-shapes.json").is_file()
