import json

import pytest

from studio.core.generation.settings import (
    Settings,
    clamp_number,
    effective_model,
    load_settings,
    request_from_settings,
    save_settings,
)
from studio.core.storage import paths


def test_studio_home_holds_everything(studio_home):
    assert paths.data_home() == studio_home
    assert paths.settings_file().parent == studio_home
    assert paths.outputs_dir().parent == studio_home


def test_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    settings = Settings(model="/m", prompt="a cat", steps=33, guidance=4.5, random_seed=False, seed=99)
    save_settings(settings, path)
    loaded, warning = load_settings(path)
    assert warning is None and loaded == settings


def test_corrupt_file_is_set_aside_not_fatal(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    loaded, warning = load_settings(path)
    assert loaded == Settings()
    assert "could not be read" in warning
    assert not path.exists() and len(list(tmp_path.glob("settings.json.unreadable-*"))) == 1


def test_wrong_types_fall_back_to_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"steps": "lots", "prompt": "kept", "guidance": 5}))
    loaded, _ = load_settings(path)
    assert loaded.steps == Settings().steps and loaded.prompt == "kept" and loaded.guidance == 5.0


def test_random_seed_is_resolved_into_the_request():
    settings = Settings(prompt="x", random_seed=True)
    seeds = {request_from_settings(settings, "/m").seed for _ in range(5)}
    assert len(seeds) > 1
    fixed = Settings(prompt="x", random_seed=False, seed=1234)
    assert request_from_settings(fixed, "/m").seed == 1234


def test_user_model_wins_over_demo():
    assert effective_model(Settings(model="/my/model")) == "/my/model"


def test_model_defaults_are_adopted(tmp_path):
    from studio.core.generation.settings import apply_model_defaults

    (tmp_path / "studio.json").write_text(json.dumps(
        {"name": "Demo", "native_size": [64, 64], "default_sampler": "euler a", "default_steps": 20, "default_guidance": 5}))
    settings = Settings()
    assert apply_model_defaults(settings, str(tmp_path))
    assert (settings.width, settings.height, settings.sampler, settings.steps, settings.guidance) == (64, 64, "Euler a", 20, 5.0)
    assert not apply_model_defaults(settings, str(tmp_path))  # nothing left to change
    assert not apply_model_defaults(Settings(), str(tmp_path / "elsewhere"))  # no studio.json: no change


# -- damaged and out-of-range settings (issue 9, items 4 and 15) -------------------------------
def test_deeply_nested_file_is_set_aside_with_a_message(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    loaded, warning = load_settings(path)  # RecursionError inside json must not escape
    assert loaded == Settings()
    assert "could not be read" in warning and "nested too deeply" in warning
    assert not path.exists() and len(list(tmp_path.glob("settings.json.unreadable-*"))) == 1


@pytest.mark.parametrize("content", ['{"steps": NaN}', '{"guidance": Infinity}', "\udcff".encode("utf-8", "surrogatepass")])
def test_non_standard_json_and_bad_bytes_are_set_aside(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    loaded, warning = load_settings(path)
    assert loaded == Settings() and "could not be read" in warning and not path.exists()


def test_numbers_are_clamped_into_each_fields_range(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({
        "steps": 2**40, "guidance": -3, "seed": 2**64, "width": 10**30, "height": 13, "batch_count": 0,
        "strength": 7.5, "mask_blur": -1, "inpaint_padding": 2**31, "prompt": "kept",
    }))
    loaded, warning = load_settings(path)
    assert warning is None and loaded.prompt == "kept"
    assert (loaded.steps, loaded.guidance, loaded.seed) == (150, 0.0, 2**32 - 1)
    assert (loaded.width, loaded.height, loaded.batch_count) == (4096, 64, 1)
    assert (loaded.strength, loaded.mask_blur, loaded.inpaint_padding) == (1.0, 0, 256)
    assert all(getattr(loaded, n) <= 2**32 - 1 for n in ("steps", "seed", "width", "height", "inpaint_padding"))
    request_from_settings(loaded, "/m").validated()  # what was loaded is always a valid request


def test_sides_become_multiples_of_8_and_floats_whole_numbers(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"width": 517, "height": 640.0, "steps": 20.0}))
    loaded, _ = load_settings(path)
    assert (loaded.width, loaded.height, loaded.steps) == (520, 640, 20)
    assert type(loaded.steps) is int


def test_unknown_device_falls_back_to_auto_with_a_message(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"device": "xpu", "prompt": "kept"}))
    loaded, warning = load_settings(path)
    assert loaded.device == "auto" and loaded.prompt == "kept"
    assert "xpu" in warning and "auto" in warning
    assert path.exists()  # the file is fine otherwise: not set aside


def test_unknown_names_fall_back_to_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"sampler": "Magic", "mode": "sideways", "inpaint_area": 3, "masked_content": "?"}))
    loaded, _ = load_settings(path)
    assert (loaded.sampler, loaded.mode, loaded.inpaint_area, loaded.masked_content) == (
        Settings().sampler, "txt2img", "whole", "original")


@pytest.mark.parametrize("name, value, expected", [
    ("steps", 151, 150), ("steps", True, None), ("seed", -1, 0), ("seed", float("nan"), None),
    ("guidance", 10**400, 50.0), ("strength", 0, 0.01), ("width", "512", None), ("prompt", "x", "x"),
])
def test_clamp_number(name, value, expected):
    assert clamp_number(name, value) == expected
