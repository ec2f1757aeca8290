"""The output folder: the artist's choice or the default, checked before it is needed; a
failed write keeps the image."""

import numpy as np
import pytest
from PIL import Image

from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import (
    Settings,
    load_settings,
    save_settings,
    settings_from_dict,
)
from studio.core.storage.output_folder import (
    KeepingWriter,
    UnsavedImage,
    check_output_folder,
    output_folder,
    saved_output_folder,
)
from studio.core.storage.paths import outputs_dir, settings_file


def test_the_chosen_folder_wins_and_empty_means_the_default(tmp_path):
    assert output_folder("") == outputs_dir() and output_folder(str(tmp_path)) == tmp_path
    assert saved_output_folder() == outputs_dir()  # no settings yet
    save_settings(Settings(outputs_dir=str(tmp_path / "mine")), settings_file())
    assert saved_output_folder() == tmp_path / "mine"
    assert KeepingWriter().root == tmp_path / "mine"  # the writer the app's engine uses follows the setting


def test_a_writable_folder_passes_and_is_created(tmp_path):
    assert check_output_folder(tmp_path / "new" / "deep") is None
    assert (tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new" / "deep").iterdir())  # no probe left


def test_an_unwritable_or_full_folder_is_said_in_plain_words(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    error = check_output_folder(blocked)
    assert error is not None and "cannot be saved" in error.message and error.hint
    full = check_output_folder(tmp_path, min_free=1 << 62)
    assert full is not None and "almost full" in full.message


def test_a_failed_write_raises_with_the_pixels(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    request = GenerationRequest(prompt="p", seed=4, width=64, height=64)
    with pytest.raises(UnsavedImage) as caught:
        KeepingWriter(blocked).save(Image.new("RGB", (64, 64), (9, 8, 7)), request)
    assert caught.value.image[0, 0].tolist() == [9, 8, 7] and caught.value.request == request
    assert np.asarray(caught.value.image).shape == (64, 64, 3)


def test_new_settings_fields_are_validated():
    settings, _ = settings_from_dict({"theme": "neon", "outputs_dir": "a\0b", "window_state": "AAAA"})
    assert (settings.theme, settings.outputs_dir, settings.window_state) == ("dark", "", "AAAA")
    assert settings_from_dict({"theme": "light"})[0].theme == "light"


def test_settings_round_trip_the_new_fields(tmp_path):
    path = tmp_path / "s.json"
    save_settings(Settings(theme="light", outputs_dir="/x/y", window_geometry="QUJD"), path)
    loaded = load_settings(path)[0]
    assert (loaded.theme, loaded.outputs_dir, loaded.window_geometry) == ("light", "/x/y", "QUJD")
