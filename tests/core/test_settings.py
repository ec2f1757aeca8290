import json

from studio.core import paths
from studio.core.settings import Settings, effective_model, load_settings, request_from_settings, save_settings


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
    from studio.core.settings import apply_model_defaults

    (tmp_path / "studio.json").write_text(json.dumps(
        {"name": "Demo", "native_size": [64, 64], "default_sampler": "euler a", "default_steps": 20, "default_guidance": 5}))
    settings = Settings()
    assert apply_model_defaults(settings, str(tmp_path))
    assert (settings.width, settings.height, settings.sampler, settings.steps, settings.guidance) == (64, 64, "Euler a", 20, 5.0)
    assert not apply_model_defaults(settings, str(tmp_path))  # nothing left to change
    assert not apply_model_defaults(Settings(), str(tmp_path / "elsewhere"))  # no studio.json: no change
