"""The application layer's state and services without a window (issue 12, item 1): the
generation state the controller owns, the request it builds from it, and the recall, history
and session services, each driven the way the window drives them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.application.controller import StudioController
from studio.application.generation_state import GenerationState
from studio.application.history_service import HistoryService
from studio.application.recall_service import RecallService
from studio.application.session_service import CanvasSnapshot, SessionService
from studio.core.formats.dropped_image import read_dropped_image
from studio.core.generation.request import InvalidRequest
from studio.core.generation.settings import Settings, load_settings
from studio.core.storage.history import History
from studio.core.storage.job_queue import JobQueue
from studio.core.storage.outputs import OutputWriter
from studio.core.storage.presets import Preset, PresetStore, Style
from tests.fakes import FakeBackend


@pytest.fixture
def state(qapp, tmp_path):
    return GenerationState(Settings(model="/models/a", seed=5, random_seed=False), tmp_path / "settings.json")


@pytest.fixture
def controller(qapp, tmp_path, state):
    made = StudioController(FakeBackend(), JobQueue(tmp_path / "queue.json"), OutputWriter(tmp_path / "outputs"),
                            state=state)
    yield made
    made.close(10)


def test_replace_puts_new_fields_out_and_saves_them(state):
    replaced, seeds = [], []
    state.replaced.connect(replaced.append)
    state.seedRestored.connect(lambda: seeds.append(True))
    fresh = Settings(model="/models/a", prompt="a fox", seed=5, random_seed=False)
    assert not state.replace(fresh)  # the same fixed seed: nothing to say
    assert replaced == [fresh] and state.settings is fresh and seeds == []
    assert load_settings(state.path)[0].prompt == "a fox"
    assert state.replace(Settings(model="/models/a", seed=77, random_seed=False))  # a restored seed
    assert seeds == [True]


def test_current_collects_the_widgets_first(state):
    state.collect = lambda settings: setattr(settings, "prompt", "typed just now")
    assert state.current().prompt == "typed just now"


def test_only_a_model_that_loaded_is_remembered(state, tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x")
    state.remembered_model = ""
    state.settings.model = str(model)
    state.save()
    assert load_settings(state.path)[0].model == ""  # chosen, not loaded yet
    state.model_loaded(str(model.resolve()))
    assert state.remembered_model == str(model) and load_settings(state.path)[0].model == str(model)


def test_an_unwritable_settings_file_is_said_not_raised(state, tmp_path):
    said = []
    state.saveFailed.connect(said.append)
    state.path = tmp_path / "settings.json" / "nested"  # its parent is... a file to be: make it one
    (tmp_path / "settings.json").write_text("{}")
    assert not state.save()
    assert said and said[0].startswith("Could not save settings")


def test_the_controller_builds_the_request_from_its_state(controller):
    controller.state.settings.prompt = "a lighthouse"
    controller.state.settings.negative_prompt = "fog"
    request = controller.request(style=Style("Ink", "{prompt}, ink drawing", "colour"))
    assert request.prompt == "a lighthouse, ink drawing" and request.negative_prompt == "fog, colour"
    assert request.model == "/models/a" and request.seed == 5
    assert controller.state.settings.prompt == "a lighthouse"  # the artist's words stay as typed
    controller.state.settings.steps = 0
    with pytest.raises(InvalidRequest):
        controller.request()


def test_recall_applies_a_preset_and_history_fields_through_the_state(state, tmp_path):
    presets = PresetStore(builtin_dir=tmp_path / "none", user_dir=tmp_path / "presets")
    recall = RecallService(state, presets)
    replaced = []
    state.replaced.connect(replaced.append)
    said = recall.apply_preset(Preset("Tall", {"width": 512, "height": 768}))
    assert said == "Applied preset “Tall”." and (state.settings.width, state.settings.height) == (512, 768)
    said = recall.restore_fields({"seed": 1234, "prompt": "a cat"}, "seed")
    assert state.settings.seed == 1234 and state.settings.prompt != "a cat"
    assert said == "Restored the seed from history. Seed 1234 restored: Random is off."
    assert len(replaced) == 2


def test_recall_restores_a_dropped_studio_image_and_names_its_model(state, tmp_path):
    from studio.core.generation.request import GenerationRequest

    model = tmp_path / "other.safetensors"
    model.write_bytes(b"x")
    request = GenerationRequest(prompt="a red barn", seed=42, steps=9, width=64, height=64, model=str(model))
    path, _ = OutputWriter(tmp_path / "out").save(Image.fromarray(np.zeros((64, 64, 3), np.uint8)), request)
    dropped = read_dropped_image(str(path))
    recall = RecallService(state, PresetStore(builtin_dir=tmp_path / "none", user_dir=tmp_path / "presets"))
    switch, said = recall.model_switch(dropped)
    assert switch == str(model) and said == ["Switched to its model, other."]
    text = recall.restore_dropped(dropped)
    assert text.startswith(f"Restored the exact settings of {path.name}")
    assert (state.settings.prompt, state.settings.seed, state.settings.steps) == ("a red barn", 42, 9)


def test_history_service_rebuilds_a_missing_index_and_keeps_what_was_made_meanwhile(qtbot, controller, tmp_path):
    from studio.core.events import ImageSaved
    from studio.core.generation.request import GenerationRequest

    outputs = OutputWriter(tmp_path / "outputs")
    black = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    old, _ = outputs.save(black, GenerationRequest(prompt="an old one", width=64, height=64))
    service = HistoryService(controller, History(tmp_path / "history.jsonl"))
    changed = []
    service.changed.connect(lambda: changed.append(True))
    service.load(tmp_path / "outputs")
    assert service.rebuilding  # no index yet: rebuilt from the images on a thread
    new, _ = outputs.save(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), GenerationRequest(prompt="made while rebuilding"))
    controller.backendEvent.emit(ImageSaved("job", 0, new, GenerationRequest(prompt="made while rebuilding")))
    qtbot.waitUntil(lambda: not service.rebuilding, timeout=5000)
    service.close()
    assert changed
    assert {e.path for e in service.history.entries()} >= {str(old), str(new)}


def test_session_service_saves_and_restores_the_canvas_without_a_window(qtbot, state, studio_home):
    document = np.full((16, 24, 3), 90, np.uint8)
    mask = np.zeros((16, 24), np.uint8)
    mask[4:8, 4:8] = 255
    state.settings.prompt = "a kept prompt"
    state.settings.outputs_dir = "/old/outputs"
    service = SessionService(state, lambda: CanvasSnapshot(document, mask, 33))
    service.canvas_changed()
    assert service.pending  # debounced: saved after a pause, not at every change
    service.save_now().result(timeout=10)
    service.end()

    # settings.json, newer than the last autosave: a folder chosen just before a crash
    state_after = GenerationState(Settings(model="/models/b", device="cpu", outputs_dir="/new/outputs",
                                           brush_opacity=0.5))
    replaced = []
    state_after.replaced.connect(replaced.append)
    restored = SessionService(state_after, lambda: CanvasSnapshot(None, None, 0)).restore()
    assert restored is not None and restored.found and restored.problems == []
    assert (restored.document == document).all() and (restored.mask == mask).all() and restored.brush_size == 33
    assert state_after.settings.prompt == "a kept prompt" and replaced == [state_after.settings]
    assert (state_after.settings.model, state_after.settings.device) == ("/models/b", "cpu")  # this run's
    assert (state_after.settings.outputs_dir, state_after.settings.brush_opacity) == ("/new/outputs", 0.5)
