"""Dropping images that carry clip skip, hires fix and variation settings; dropped images and
history entries that name hostile files (issue 9, item 6)."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QGroupBox, QSpinBox

from studio.core.generation.request import GenerationRequest, Mode
from studio.core.generation.settings import request_from_settings
from studio.core.storage.outputs import PARAMETERS_KEY, REQUEST_KEY

A1111 = (
    "a fox in snow <lora:not_here:0.7>\nNegative prompt: blurry\n"
    "Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x640, "
    "Model hash: 6ce0161689, Model: v1-5, Variation seed: 4000000001, Variation seed strength: 0.35, "
    "Seed resize from: 448x576, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 1.5, Hires steps: 12, "
    'Hires upscaler: Latent (nearest), Lora hashes: "not_here: 0123456789ab", Version: v1.10.1'
)


def _png(path, chunks: dict) -> str:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, pnginfo=info)
    return str(path)


def _drop(window, path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return window.recall.handle_drop(mime)


def _widget(window, kind, name):
    widget = window.panel.findChild(kind, name)
    assert widget is not None, name
    return widget


def test_dropping_an_a1111_image_restores_every_extra(qtbot, make_window, tmp_path):
    window = make_window()
    assert _drop(window, _png(tmp_path / "a1111.png", {PARAMETERS_KEY: A1111}))
    assert _widget(window, QSpinBox, "clipSkipSpin").value() == 2
    hires = _widget(window, QGroupBox, "hiresGroup")
    assert hires.isChecked() and hires.isVisible()
    assert _widget(window, QDoubleSpinBox, "hiresScaleSpin").value() == 1.5
    assert _widget(window, QSpinBox, "hiresStepsSpin").value() == 12
    assert _widget(window, QDoubleSpinBox, "hiresDenoiseSpin").value() == 0.45
    assert _widget(window, QComboBox, "hiresUpscalerCombo").currentText() == "Latent (nearest)"
    assert _widget(window, QGroupBox, "variationGroup").isChecked()
    assert int(_widget(window, QDoubleSpinBox, "variationSeedSpin").value()) == 4000000001
    assert _widget(window, QDoubleSpinBox, "variationStrengthSpin").value() == 0.35
    assert (window.panel.seed_resize_width.value(), window.panel.seed_resize_height.value()) == (448, 576)
    status = window.status_label.text()
    assert "LoRAs not found: not_here" in status and "Lora hashes" not in status
    # What Generate would send: the picture A1111 made, hires fix and variation included.
    window.panel.store(window.settings)
    request = request_from_settings(window.settings, "m")
    got = (request.seed, request.steps, request.sampler, request.width, request.height)
    assert got == (3141592653, 24, "DPM++ 2M Karras", 512, 640)
    assert (request.clip_skip, request.hires_scale, request.hires_steps, request.hires_denoise, request.hires_upscaler) == \
        (2, 1.5, 12, 0.45, "Latent (nearest)")
    assert (request.variation_seed, request.variation_strength, request.seed_resize_width, request.seed_resize_height) == \
        (4000000001, 0.35, 448, 576)


def test_an_a1111_image_without_extras_switches_them_off(qtbot, make_window, tmp_path):
    window = make_window()
    _drop(window, _png(tmp_path / "with.png", {PARAMETERS_KEY: A1111}))
    plain = "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"
    _drop(window, _png(tmp_path / "plain.png", {PARAMETERS_KEY: plain}))
    assert not window.panel.hires_group.isChecked() and not window.panel.variation_group.isChecked()
    assert window.panel.clip_skip.value() == 1
    assert window.panel.hires_scale.value() == 1.5  # off, but kept for next time


def test_a_studio_image_restores_its_exact_request(qtbot, make_window, tmp_path):
    window = make_window()
    request = GenerationRequest("a lake", "fog", 12, 5.0, 77, 320, 448, "Euler a", model="/models/fake", clip_skip=3,
                                hires_scale=2.0, hires_steps=4, hires_denoise=0.6, hires_upscaler="Lanczos",
                                variation_seed=9, variation_strength=0.2, seed_resize_width=256, seed_resize_height=256)
    _drop(window, _png(tmp_path / "studio.png", {REQUEST_KEY: json.dumps(request.to_dict())}))
    window.panel.store(window.settings)
    assert request_from_settings(window.settings, "/models/fake") == request


def _studio_png(tmp_path, name, **changes) -> str:
    request = GenerationRequest("restored prompt", seed=42, steps=9, model="/models/fake", **changes)
    return _png(tmp_path / name, {REQUEST_KEY: json.dumps(request.to_dict())})


@pytest.mark.parametrize("source", ["/etc/passwd", "nul\0byte.png", "/nonexistent/in.png", "folder"])
def test_a_hostile_input_path_restores_the_settings_and_reports_the_image(qtbot, make_window, tmp_path, source):
    window = make_window()
    if source == "folder":
        source = str(tmp_path)
    before = window.canvas.document
    path = _studio_png(tmp_path, "hostile.png", mode=Mode.IMG2IMG, init_image=source, strength=0.5)
    assert _drop(window, path)  # no exception reaches the window
    assert window.panel.prompt.toPlainText() == "restored prompt" and window.panel.steps.value() == 9
    assert window.canvas.document is before
    assert "input image was not restored" in window.status_label.text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifos_named_by_a_drop_or_the_history_never_block(qtbot, make_window, tmp_path):
    window = make_window()
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    started = time.monotonic()
    _drop(window, _studio_png(tmp_path, "fifo.png", mode=Mode.INPAINT, init_image=str(fifo), mask=str(fifo)))
    assert "not a regular file" in window.status_label.text()
    window.recall.view_result(str(fifo))  # a history entry pointing at a FIFO
    assert "Could not open the result" in window.status_label.text()
    window.recall.restore_from_image(str(fifo))  # read_metadata refuses it too
    assert time.monotonic() - started < 10


def test_inputs_are_restored_when_they_are_real_images(qtbot, make_window, tmp_path):
    window = make_window()
    source = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 10:30] = 255
    Image.fromarray(source).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    _drop(window, _studio_png(tmp_path, "inpaint.png", mode=Mode.INPAINT, init_image=str(tmp_path / "in.png"),
                              mask=str(tmp_path / "mask.png")))
    assert np.array_equal(window.canvas.document, source) and np.array_equal(window.canvas.mask, mask)
    assert window.panel.current_mode() == "inpaint"


def test_a_broken_image_without_settings_is_an_error_not_an_exception(qtbot, make_window, tmp_path):
    window = make_window()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    window.recall.restore_from_image(str(tmp_path / "broken.png"))
    assert window.banner.isVisible() and "broken.png" in window.banner.label.text()
    assert window.canvas.document is None


def test_the_window_keeps_painting_while_a_drop_is_read(qtbot, make_window, tmp_path, monkeypatch):
    """The read runs on the reader thread; the GUI thread only waits in an event loop."""
    import threading

    from studio.ui import recall

    window = make_window()
    seen = []
    original = recall.read_dropped_image

    def slow(*args):
        seen.append(threading.current_thread() is not threading.main_thread())
        time.sleep(0.2)
        return original(*args)

    monkeypatch.setattr(recall, "read_dropped_image", slow)
    ticks = []
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    _drop(window, _png(tmp_path / "a1111.png", {PARAMETERS_KEY: A1111}))
    timer.stop()
    assert seen == [True] and len(ticks) >= 3  # timers (and paints) ran during the read
    assert window.panel.clip_skip.value() == 2


def test_a_dropped_image_selects_its_model_from_the_library_by_hash(qtbot, make_window, script, tmp_path):
    import torch

    from studio.core.generation.settings import Settings
    from studio.core.models.model_hash import file_sha256
    from studio.engine.tiny_model import build_tiny_family
    from tests.checkpoint_files import write_single_file

    library = tmp_path / "models" / "Stable-diffusion"
    model = write_single_file(build_tiny_family("sd1"), library / "dreamy_v3.safetensors", dtype=torch.float16)
    short = file_sha256(model)[:10]  # hashed once, as the engine does when it loads a model
    settings = Settings(model="/models/fake", model_dirs=[str(library)], random_seed=False, width=64, height=64)
    window = make_window(settings)
    text = A1111.replace("Model hash: 6ce0161689, Model: v1-5", f"Model hash: {short}, Model: renamed-on-civitai")
    assert _drop(window, _png(tmp_path / "by-hash.png", {PARAMETERS_KEY: text}))
    qtbot.waitUntil(lambda: any(path == str(model) for path, _ in script.loads), timeout=5000)
    assert window.settings.model == str(model)
    assert "Switched to its model, dreamy_v3" in window.status_label.text()

    assert _drop(window, _png(tmp_path / "unknown.png", {PARAMETERS_KEY: A1111}))  # v1-5, not installed
    assert "made with v1-5, which is not in your model library" in window.status_label.text()
    assert window.settings.model == str(model)
