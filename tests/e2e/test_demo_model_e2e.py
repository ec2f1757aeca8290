"""The bundled demo model through the whole studio: its pictures mean something, so these
tests can check what a person would see (colours, shapes), not just that pixels exist."""

import numpy as np
import pytest
from PIL import Image

from studio.core.generation.settings import Settings, apply_model_defaults, effective_model
from studio.core.storage.outputs import read_request
from studio.core.storage.paths import demo_model_dir
from studio.demo_model.scenes import Scene, analyze, draw

PROMPT = "a large red circle on the left, blue background"


@pytest.fixture
def studio(open_studio):
    settings = Settings(random_seed=False, seed=3)  # no model chosen: the demo model is the default
    assert effective_model(settings) == str(demo_model_dir())
    apply_model_defaults(settings, effective_model(settings))  # what a first run does
    return open_studio(settings)


def _generate(qtbot, window):
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=120000) as ended:
        window.job_view.generate()
    assert ended.args == ["finished"], window.banner.label.text()
    return np.asarray(Image.open(window.job_view.last_image_path).convert("RGB"))


def test_first_run_makes_the_prompted_picture(qtbot, studio, monkeypatch):
    window = studio
    assert (window.panel.width_spin.value(), window.panel.height_spin.value()) == (64, 64)  # native size
    previews = []  # what the canvas was asked to show, on the GUI thread
    show = window.canvas.show_pixels
    monkeypatch.setattr(window.canvas, "show_pixels",
                        lambda pixels, *a, **k: (previews.append(pixels.shape), show(pixels, *a, **k)))
    window.panel.prompt.setPlainText(PROMPT)
    pixels = _generate(qtbot, window)
    scene = analyze(Image.fromarray(pixels))
    assert (scene["background"], scene["color"], scene["shape"], scene["position"]) == ("blue", "red", "circle", "left")
    assert previews[:-2] and all(shape == (16, 16, 3) for shape in previews[:-2])  # x0 previews at latent size
    assert previews[-2] == previews[-1] == (64, 64, 3)  # then the result: once decoded, once saved
    assert read_request(window.job_view.last_image_path).prompt == PROMPT


def test_inpainting_recolours_the_object_and_keeps_the_rest(qtbot, studio, tmp_path):
    window = studio
    source = np.asarray(draw(Scene("large", "red", "circle", "center", "blue", 0.0, 0.0)))
    Image.fromarray(source).save(tmp_path / "scene.png")
    assert window.image_input.load_image_file(str(tmp_path / "scene.png"))
    window.panel.set_mode("inpaint")
    window.panel.strength.setValue(1.0)
    window.panel.mask_blur.setValue(0)
    window.panel.masked_content.setCurrentIndex(window.panel.masked_content.findData("latent_noise"))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255  # the object's box
    window.canvas.set_document(source, "mask", mask)
    window.panel.prompt.setPlainText("a large green circle on the center, blue background")
    pixels = _generate(qtbot, window)
    assert np.array_equal(pixels[mask == 0], source[mask == 0])  # outside the mask: untouched
    inside = pixels[24:40, 24:40].reshape(-1, 3).mean(axis=0)
    assert inside[1] > inside[0] + 40  # the object is green now, not red


def test_img2img_at_low_strength_stays_close_to_its_input(qtbot, studio, tmp_path):
    window = studio
    source = np.asarray(draw(Scene("large", "yellow", "square", "center", "purple", 0.0, 0.0)))
    Image.fromarray(source).save(tmp_path / "in.png")
    assert window.image_input.load_image_file(str(tmp_path / "in.png"))
    distances = {}
    for strength in (0.2, 1.0):
        window.panel.strength.setValue(strength)
        window.panel.prompt.setPlainText("a small white triangle, green background")
        pixels = _generate(qtbot, window).astype(float)
        distances[strength] = np.abs(pixels - source).mean()
    # Measured on the shipped model (same seed and prompt, straight through diffusers): about
    # 4 at 0.2 and about 110 at 1.0. Low strength must keep the picture: within 8% of the range on average,
    # and under a fifth of what full strength changes.
    assert distances[0.2] < 0.08 * 255
    assert distances[0.2] < 0.2 * distances[1.0]
