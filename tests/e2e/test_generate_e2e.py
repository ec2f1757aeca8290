"""From typing a prompt in the window to the PNG on disk, through the real engine thread and a
real diffusers pipeline (tiny random SD 1.x model on CPU)."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from studio.core.formats.infotext import parse_infotext
from studio.core.generation.settings import Settings
from studio.core.storage.outputs import PARAMETERS_KEY, read_request


@pytest.fixture
def studio(open_studio, tiny_model_dir):
    return open_studio(Settings(model=str(tiny_model_dir), width=64, height=64, steps=6, random_seed=False, seed=1234))


def test_prompt_to_png_with_metadata(qtbot, studio, studio_home, monkeypatch):
    window = studio
    previews = []  # what the GUI thread put on the canvas
    show = window.canvas.show_pixels
    monkeypatch.setattr(window.canvas, "show_pixels",
                        lambda pixels, *a, **k: (previews.append(pixels.shape), show(pixels, *a, **k)))
    qtbot.keyClicks(window.panel.prompt, "a red circle on the left")
    window.panel.negative.setPlainText("green")
    window.panel.sampler.setCurrentText("Euler a")
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000) as ended:
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    assert ended.args == ["finished"]
    path = window.job_view.last_image_path
    assert path.is_relative_to(studio_home / "outputs")
    request = read_request(path)
    assert (request.prompt, request.negative_prompt, request.sampler, request.seed) == (
        "a red circle on the left", "green", "Euler a", 1234)
    with Image.open(path) as image:
        params = parse_infotext(image.text[PARAMETERS_KEY])
        shown = window.canvas.current_pixmap().toImage()
        assert (shown.width(), shown.height()) == image.size == (64, 64)
        assert shown.pixelColor(5, 7).getRgb()[:3] == image.getpixel((5, 7))
    assert params.prompt == "a red circle on the left" and params.params["Seed"] == "1234"
    # Every step reports; a busy GUI may skip frames, never queue them. Then the result, twice:
    # shown once decoded, then as the canvas's result once it is on disk.
    assert 1 <= len(previews) - 2 <= 6 and all(shape == (32, 32, 3) for shape in previews[:-2])
    assert previews[-2] == previews[-1] == (64, 64, 3)


def test_cancel_then_generate_again(qtbot, studio):
    window = studio
    window.panel.steps.setValue(150)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000) as ended:
        window.job_view.generate()
        qtbot.waitUntil(lambda: window.progress.value() >= 2, timeout=30000)
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert ended.args == ["cancelled"]
    assert window.progress.value() == 0 and window.panel.generate_button.isEnabled()
    window.panel.steps.setValue(2)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000) as ended:
        window.job_view.generate()
    assert ended.args == ["finished"]
    first = np.asarray(Image.open(window.job_view.last_image_path))
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000):
        window.job_view.generate()
    assert np.array_equal(first, np.asarray(Image.open(window.job_view.last_image_path)))  # same seed, same pixels


def test_inpaint_from_the_window(qtbot, studio, tmp_path):
    """Open an image, paint a mask with the mouse, inpaint through the real engine thread."""
    window = studio
    rng = np.random.default_rng(5)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "photo.png")
    assert window.image_input.load_image_file(str(tmp_path / "photo.png"))
    assert window.panel.current_mode() == "img2img"  # an input image leaves txt2img
    window.panel.set_mode("inpaint")
    window.panel.mask_blur.setValue(0)
    canvas = window.canvas
    canvas.set_brush(size=12, hardness=1.0, opacity=1.0)
    viewport = canvas.viewport()
    at = lambda x, y: canvas.mapFromScene(x, y)  # noqa: E731
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=at(20, 32))
    qtbot.mouseMove(viewport, at(44, 32))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=at(44, 32))
    mask = canvas.mask.copy()
    assert mask[32, 30] == 255 and mask[5, 5] == 0
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000) as ended:
        window.job_view.generate()
    assert ended.args == ["finished"], window.banner.label.text()
    result = np.asarray(Image.open(window.job_view.last_image_path))
    assert np.array_equal(result[mask == 0], source[mask == 0])
    assert not np.array_equal(result[mask == 255], source[mask == 255])
    recorded = read_request(window.job_view.last_image_path)
    assert recorded.mode.value == "inpaint"
    assert np.array_equal(np.asarray(Image.open(recorded.mask)), mask)  # the mask travels with the result
    # Dropping the result back brings the mode, the input image and the mask back too.
    window.canvas.clear_mask()
    window.panel.set_mode("txt2img")
    window.recall.restore_from_image(str(window.job_view.last_image_path))
    assert window.panel.current_mode() == "inpaint"
    assert np.array_equal(canvas.document, source) and np.array_equal(canvas.mask, mask)


def test_dropping_a_result_back_reproduces_its_pixels(qtbot, studio):
    """A studio image dropped back restores exactly its request; Generate gives identical pixels."""
    from PySide6.QtCore import QMimeData, QUrl

    window = studio
    window.panel.prompt.setPlainText("a green square")
    window.panel.random_seed.setChecked(True)
    window.panel.sampler.setCurrentText("Euler a")  # an ancestral sampler: the seed matters at every step
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000):
        window.job_view.generate()
    original_path = window.job_view.last_image_path
    original = np.asarray(Image.open(original_path))
    window.panel.prompt.setPlainText("something else")
    window.panel.sampler.setCurrentText("DDIM")
    window.panel.steps.setValue(3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(original_path))])
    assert window.recall.handle_drop(mime)
    assert window.panel.prompt.toPlainText() == "a green square" and not window.panel.random_seed.isChecked()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=60000):
        window.job_view.generate()
    assert window.job_view.last_image_path != original_path
    assert read_request(window.job_view.last_image_path) == read_request(original_path)
    assert np.array_equal(np.asarray(Image.open(window.job_view.last_image_path)), original)
