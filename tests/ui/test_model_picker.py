"""The model toolbar: the library's models and VAEs in their pickers, memory options, engine notes.

The library is an A1111 install in a temporary folder: tiny single-file checkpoints of two
families (and a LoRA that must not be listed) in models/Stable-diffusion, a VAE in models/VAE.
"""

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import ImageFinished, ModelLoading
from studio.core.generation.settings import Settings, load_settings, save_settings
from studio.core.models.model_info import ModelDefaults, model_defaults
from studio.ui import model_picker
from tests.fakes import FakeEngine

FP32_NOTE = "This model's VAE overflows in half precision: decoded in full precision."
MEMORY_NOTE = "The model needs about 6.6 GB; CUDA has 3.9 GB free."
# A combo's list is a popup; the offscreen platform says it cannot raise it or grab the keyboard.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support (raise|grabbing the keyboard)", extend=True)


@pytest.fixture(scope="module")
def webui(tmp_path_factory):
    """An A1111 install: {root, models: {family: path}, lora, vae}."""
    import torch

    from studio.engine.tiny_model import build_tiny_family
    from tests.checkpoint_files import write_kohya_lora, write_single_file, write_vae_only

    root = tmp_path_factory.mktemp("webui")
    checkpoints = root / "models" / "Stable-diffusion"
    sd1 = build_tiny_family("sd1")
    models = {
        "sdxl": write_single_file(build_tiny_family("sdxl"), checkpoints / "tinyXL.safetensors", dtype=torch.float16),
        "sd1": write_single_file(sd1, checkpoints / "fine-tunes" / "tiny15.safetensors", dtype=torch.float16),
    }
    lora = write_kohya_lora(checkpoints / "styleLora.safetensors")
    (root / "models" / "VAE").mkdir()
    vae = write_vae_only(root / "models" / "VAE" / "tiny-ft-mse.safetensors", vae=sd1.vae)
    return {"root": root, "checkpoints": checkpoints, "models": models, "lora": lora, "vae": vae}


def _settings(**changes):
    return Settings(**{"model": "/models/fake", "random_seed": False, "seed": 5, "width": 64, "height": 64,
                       "steps": 2, **changes})


def _texts(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def _scanned(qtbot, window):
    qtbot.waitUntil(lambda: window.picker.library.scanned, timeout=10000)


def _pick(qtbot, combo, text):
    """Choose the entry containing `text` as a user does: open the list, click the entry."""
    index = next(i for i in range(combo.count()) if text in combo.itemText(i))
    combo.showPopup()
    view = combo.view()
    qtbot.waitUntil(view.isVisible)
    view.scrollTo(view.model().index(index, 0))
    rect = view.visualRect(view.model().index(index, 0))
    with qtbot.waitSignal(combo.activated, timeout=2000) as activated:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert activated.args == [index]


def test_the_library_lists_each_model_with_its_family_and_no_lora(qtbot, make_window, webui):
    window = make_window(_settings(model_dirs=[str(webui["checkpoints"])]))
    _scanned(qtbot, window)
    texts = _texts(window.model_combo)
    sdxl = next(t for t in texts if t.startswith("tinyXL"))
    sd1 = next(t for t in texts if t.startswith("tiny15"))
    assert "SDXL" in sdxl and "MB" in sdxl and "SD 1.x" in sd1
    assert not any("styleLora" in t for t in texts)
    assert {"Choose file or folder…", "Add model folder…", "Rescan model folders"} <= set(texts)
    # The current model is outside the library: listed on its own and selected.
    assert window.model_combo.currentText() == "fake"
    tooltips = [window.model_combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(len(texts))]
    assert str(webui["models"]["sdxl"]) in tooltips
    assert _texts(window.vae_combo) == ["Automatic", "tiny-ft-mse"]
    assert window.vae_combo.currentText() == "Automatic"


def test_the_demo_model_is_named_as_such(qtbot, make_window, webui):
    from studio.core.storage.paths import demo_model_dir

    window = make_window(_settings(model=str(demo_model_dir())))
    assert window.model_combo.currentText() == "Demo model  ·  SD 1.x"


def test_the_scan_runs_in_its_own_thread_and_fills_the_combo_later(qtbot, make_window, webui, monkeypatch):
    real_scan = model_picker.scan_models
    release = threading.Event()
    threads = []

    def slow_scan(folders):
        threads.append(threading.current_thread().name)
        assert release.wait(10), "the test never released the scan"
        return real_scan(folders)

    monkeypatch.setattr(model_picker, "scan_models", slow_scan)
    try:
        window = make_window(_settings(model_dirs=[str(webui["checkpoints"])]))
        qtbot.waitUntil(lambda: bool(threads), timeout=5000)
        qtbot.wait(100)  # the GUI keeps handling events while the scan is held...
        assert threads == [model_picker.SCAN_THREAD_NAME]
        assert not any("tinyXL" in t for t in _texts(window.model_combo))
        assert "Scanning model folders…" in _texts(window.model_combo)
    finally:
        release.set()  # ...and the result arrives once it is done
    qtbot.waitUntil(lambda: any("tinyXL" in t for t in _texts(window.model_combo)), timeout=5000)
    assert "Rescan model folders" in _texts(window.model_combo)


def test_choosing_a_model_loads_it_with_its_native_size(qtbot, make_window, script, webui):
    window = make_window(_settings(model_dirs=[str(webui["checkpoints"])]))
    _scanned(qtbot, window)
    sdxl = str(webui["models"]["sdxl"])
    _pick(qtbot, window.model_combo, "tinyXL")
    qtbot.waitUntil(lambda: bool(script.loads) and script.loads[-1][0] == sdxl, timeout=5000)
    qtbot.waitUntil(lambda: window.state.remembered_model == sdxl, timeout=5000)  # remembered once loaded
    assert window.model_combo.currentText().startswith("tinyXL")
    assert (window.settings.width, window.settings.height) == (1024, 1024)  # SDXL's native size
    assert window.panel.width_spin.value() == 1024
    _pick(qtbot, window.model_combo, "tiny15")
    qtbot.waitUntil(lambda: script.loads[-1][0] == str(webui["models"]["sd1"]), timeout=5000)
    assert window.settings.width == 512
    loads = len(script.loads)
    _pick(qtbot, window.model_combo, "Rescan")  # an action: no load, the model stays selected
    qtbot.waitUntil(lambda: "Found 2 models and 1 VAE" in window.status_label.text(), timeout=5000)
    assert len(script.loads) == loads and window.model_combo.currentText().startswith("tiny15")


def test_choosing_a_vae_puts_it_in_the_next_request(qtbot, make_window, script, webui, tmp_path):
    window = make_window(_settings(model_dirs=[str(webui["checkpoints"])]))
    _scanned(qtbot, window)
    loads = len(script.loads)
    _pick(qtbot, window.vae_combo, "tiny-ft-mse")
    assert window.settings.vae == str(webui["vae"])
    assert "tiny-ft-mse" in window.status_label.text()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].vae == str(webui["vae"])
    assert len(script.loads) == loads  # applies at the next generation, no reload
    assert json.loads((tmp_path / "settings.json").read_text())["vae"] == str(webui["vae"])
    window.model_status.set_model(str(webui["models"]["sd1"]))  # a model load takes the chosen VAE along
    qtbot.waitUntil(lambda: len(script.loads) > loads, timeout=5000)
    assert script.load_vaes[-1] == str(webui["vae"])
    _pick(qtbot, window.vae_combo, "Automatic")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert script.requests[-1].vae == ""


def test_a_vae_that_vanished_falls_back_to_automatic(qtbot, make_window, webui, tmp_path):
    window = make_window(_settings(vae=str(tmp_path / "gone.safetensors")))
    _scanned(qtbot, window)
    assert window.settings.vae == "" and window.vae_combo.currentText() == "Automatic"
    assert window.banner.isVisible() and "gone.safetensors, is no longer at" in window.banner.label.text()
    assert load_settings(window.state.path)[0].vae == ""


def test_memory_options_reach_the_engine_thread(qtbot, make_window, script):
    from studio.engine.memory import MemoryOptions

    window = make_window()
    qtbot.waitUntil(lambda: window.model_status.ready, timeout=5000)
    assert script.memory == []  # the defaults are the engine's own: nothing to send
    window.memory_button.cpu_offload.trigger()
    qtbot.waitUntil(lambda: bool(script.memory), timeout=10000)
    assert script.memory[-1] == MemoryOptions(attention_slicing=False, vae_tiling="auto", cpu_offload=True)
    assert threading.main_thread().ident not in script.thread_ids
    assert window.settings.cpu_offload and "reloads" in window.status_label.text()
    window.memory_button.vae_tiling["on"].trigger()
    window.memory_button.attention_slicing.trigger()
    qtbot.waitUntil(lambda: len(script.memory) == 3, timeout=5000)
    assert script.memory[-1] == MemoryOptions(attention_slicing=True, vae_tiling="on", cpu_offload=True)
    assert not window.memory_button.vae_tiling["auto"].isChecked()  # one tiling choice at a time
    saved, _ = load_settings(window.state.path)
    assert (saved.attention_slicing, saved.vae_tiling, saved.cpu_offload) == (True, "on", True)


def test_saved_memory_options_are_sent_before_the_first_load(qtbot, make_window, script):
    from studio.engine.memory import MemoryOptions

    order = []
    script.loads = _Recorder(order, "load")
    script.memory = _Recorder(order, "memory")
    window = make_window(_settings(cpu_offload=True, vae_tiling="off"))
    qtbot.waitUntil(lambda: "load" in order, timeout=10000)
    assert order[0] == "memory" and script.memory[0] == MemoryOptions(vae_tiling="off", cpu_offload=True)
    assert window.memory_button.cpu_offload.isChecked() and window.memory_button.vae_tiling["off"].isChecked()


class _Recorder(list):
    def __init__(self, order, name):
        super().__init__()
        self.order, self.name = order, name

    def append(self, item):
        self.order.append(self.name)
        super().append(item)


def test_add_model_folder_finds_the_checkpoints_inside_an_a1111_install(qtbot, make_window, webui, monkeypatch):
    window = make_window()
    _scanned(qtbot, window)
    assert not any("tinyXL" in t for t in _texts(window.model_combo))
    assert "No models in your model folders yet" in _texts(window.model_combo)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(webui["root"]))
    _pick(qtbot, window.model_combo, "Add model folder")
    assert window.settings.model_dirs == [str(webui["checkpoints"])]
    qtbot.waitUntil(lambda: any("tinyXL" in t for t in _texts(window.model_combo)), timeout=5000)
    assert _texts(window.vae_combo) == ["Automatic", "tiny-ft-mse"]  # models/VAE beside it
    assert "Found 2 models" in window.status_label.text()
    saved, _ = load_settings(window.state.path)
    assert saved.model_dirs == [str(webui["checkpoints"])]


def test_choose_file_or_folder_opens_a_file_or_a_diffusers_folder(qtbot, make_window, script, webui, monkeypatch, tmp_path):
    window = make_window()
    chosen = []

    def dialog(parent, caption, folder, filters):
        chosen.append(folder)
        return answer, ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    answer = str(webui["models"]["sdxl"])
    _pick(qtbot, window.model_combo, "Choose file or folder")
    qtbot.waitUntil(lambda: script.loads[-1][0] == answer, timeout=5000)
    assert Path(chosen[0]) == model_picker.model_folders([])[0] and Path(chosen[0]).is_dir()
    diffusers = tmp_path / "some-diffusers-model"
    diffusers.mkdir()
    (diffusers / "model_index.json").write_text("{}")
    answer = str(diffusers / "model_index.json")
    window.picker.choose_file()  # the old entry point still works
    qtbot.waitUntil(lambda: script.loads[-1][0] == str(diffusers), timeout=5000)
    assert window.model_combo.currentText() == "some-diffusers-model"


class _NotingEngine(FakeEngine):
    """Says what the real engine says about memory and a VAE retried in full precision."""

    def load(self, path, device=None, vae=""):
        self.script.loads.append((path, device))
        self.emit(ModelLoading(path, "cuda", MEMORY_NOTE))
        if self.script.load_error:
            raise self.script.load_error

    def generate(self, request, cancel, **options):
        emit = self.emit
        self.emit = lambda e: emit(replace(e, note=FP32_NOTE) if isinstance(e, ImageFinished) else e)
        try:
            super().generate(request, cancel, **options)
        finally:
            self.emit = emit


def test_engine_notes_are_shown_in_the_status_line(qtbot, open_window, script, tmp_path):
    script.load_error = StudioError(ErrorKind.OUT_OF_MEMORY, "The GPU ran out of memory while loading.")
    window = open_window(_settings(), lambda emit: _NotingEngine(emit, script, tmp_path / "outputs"))
    qtbot.waitUntil(window.banner.isVisible, timeout=5000)
    assert window.status_label.text() == f"The model could not be loaded. {MEMORY_NOTE}"
    script.load_error = None
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert window.status_label.text().startswith("Done in") and window.status_label.text().endswith(FP32_NOTE)


def test_settings_round_trip_the_library_fields(tmp_path):
    path = tmp_path / "settings.json"
    settings = Settings(model_dirs=["/a/models/Stable-diffusion", "/b/checkpoints"], vae="/a/models/VAE/x.safetensors",
                        attention_slicing=True, vae_tiling="off", cpu_offload=True)
    save_settings(settings, path)
    assert load_settings(path) == (settings, None)
    assert Settings().model_dirs is not Settings().model_dirs  # no list shared between instances


@pytest.mark.parametrize("stored, expected", [
    ({"vae_tiling": "sometimes"}, {"vae_tiling": "auto"}),
    ({"vae_tiling": 1}, {"vae_tiling": "auto"}),
    ({"model_dirs": "/one/folder"}, {"model_dirs": []}),
    ({"model_dirs": ["/a", 5]}, {"model_dirs": []}),
    ({"model_dirs": ["/a", "/b", "/a"]}, {"model_dirs": ["/a", "/b"]}),
    ({"cpu_offload": "yes", "attention_slicing": 1}, {"cpu_offload": False, "attention_slicing": False}),
    ({"vae": ["x"]}, {"vae": ""}),
])
def test_bad_library_settings_fall_back_to_defaults(tmp_path, stored, expected):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"prompt": "kept", **stored}))
    loaded, _ = load_settings(path)
    assert loaded.prompt == "kept"
    assert {name: getattr(loaded, name) for name in expected} == expected


def test_model_defaults_fall_back_to_the_family_native_size(webui, tmp_path):
    assert model_defaults(webui["models"]["sdxl"]) == ModelDefaults(width=1024, height=1024)
    assert model_defaults(webui["models"]["sd1"]).width == 512
    assert model_defaults(webui["lora"]) == ModelDefaults()  # not a model: nothing known, no error
    assert model_defaults(tmp_path / "nowhere.safetensors") == ModelDefaults()
    (tmp_path / "studio.json").write_text(json.dumps({"native_size": [640, 384]}))
    assert model_defaults(tmp_path).width == 640  # the author's size wins
