import json

import pytest

from studio.core.generation.settings import Settings, apply_model_defaults
from studio.core.models.model_info import ModelDefaults, model_defaults


def _write(folder, content):
    (folder / "studio.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def test_values_beyond_qt_and_field_ranges_are_clamped(tmp_path):
    _write(tmp_path, {"name": "Big", "native_size": [2**40, 10], "default_steps": 2**63,
                      "default_guidance": -1e308, "default_sampler": "euler a"})
    defaults = model_defaults(tmp_path)
    assert defaults == ModelDefaults("Big", 4096, 64, "Euler a", 150, 0.0)
    settings = Settings()
    apply_model_defaults(settings, str(tmp_path))
    assert (settings.width, settings.height, settings.steps) == (4096, 64, 150)


def test_a_bad_value_loses_only_itself(tmp_path):
    _write(tmp_path, {"name": 5, "native_size": "512x512", "default_sampler": "Magic", "default_steps": "20",
                      "default_guidance": 6})
    assert model_defaults(tmp_path) == ModelDefaults(guidance=6.0)


@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,  # RecursionError
    '{"default_steps": NaN}',
    '{"default_guidance": Infinity}',
    "[1, 2]",
    "{broken",
    '{"default_steps": 1e400}',
])
def test_damaged_files_give_empty_defaults_never_an_exception(tmp_path, content):
    _write(tmp_path, content)
    defaults = model_defaults(tmp_path)
    assert defaults.steps is None and defaults.width is None
