"""After a restart without an input image, the brush is sized by the next image, not kept at
the size the last session's image had."""

from studio.core.generation.settings import Settings
from studio.ui.canvas import MIN_BRUSH, SLIDER_MAX_BRUSH, default_brush_size


def test_the_next_image_sizes_the_brush_after_a_restart(qtbot, make_window):
    settings = Settings(model="/models/fake", random_seed=False, seed=5, width=128, height=192, steps=2)
    window = make_window(settings)
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    window.canvas.set_brush(size=6)  # fitted to this image by the artist
    window.close()  # the session keeps the brush size, not the result
    again = make_window(Settings(model="/models/fake", random_seed=False, seed=5, width=128, height=192, steps=2))
    again.panel.width_spin.setValue(256)
    again.panel.height_spin.setValue(384)
    with qtbot.waitSignal(again.job_view.jobEnded, timeout=5000):
        again.job_view.generate()
    assert again.canvas.brush.size == default_brush_size(256, 384, MIN_BRUSH, SLIDER_MAX_BRUSH) != 6
