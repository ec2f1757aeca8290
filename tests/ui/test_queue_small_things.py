"""The Queue dock's small things: buttons that do nothing are off, a hires job says the size it
makes, and a long queue follows the job that runs. Real window, engine thread, fake engine."""

import threading

from studio.core.events import JobStarted
from studio.core.generation.request import GenerationRequest, output_size
from studio.core.storage.job_queue import Job
from studio.ui.queue_panel import job_label


def test_queue_wide_buttons_are_off_on_an_empty_queue_and_on_when_they_act(qtbot, make_window, script):
    window = make_window()
    panel = window.queue_panel
    assert not panel.cancel_all_button.isEnabled() and not panel.clear_button.isEnabled()
    assert not panel.pause_button.isEnabled()
    script.hold = threading.Event()
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    assert panel.cancel_all_button.isEnabled() and panel.pause_button.isEnabled()
    assert not panel.clear_button.isEnabled()  # nothing finished yet
    script.hold.set()
    qtbot.waitUntil(lambda: window.controller.running_job is None and not window.controller.writing, timeout=5000)
    assert panel.clear_button.isEnabled() and not panel.cancel_all_button.isEnabled()
    panel.clear_button.click()
    assert not panel.clear_button.isEnabled() and not panel.pause_button.isEnabled()


def test_a_hires_job_shows_the_size_it_makes():
    request = GenerationRequest(prompt="x", width=512, height=768, hires_scale=2.0)
    assert output_size(request) == (1024, 1536)
    assert "1024×1536" in job_label(Job("a", request)) and "512×768" not in job_label(Job("a", request))
    img2img = GenerationRequest(prompt="x", width=512, height=768, hires_scale=2.0, mode="img2img", init_image="in.png")
    assert output_size(img2img) == (512, 768)  # hires fix is for txt2img only, as in A1111


def test_the_list_scrolls_to_the_job_that_starts(qtbot, make_window, script):
    window = make_window()
    window.resize(1024, 640)
    panel = window.queue_panel
    script.hold = threading.Event()
    for n in range(40):
        window.panel.prompt.setPlainText(f"job {n}")
        window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    view = panel.view
    view.scrollToTop()
    last = panel.row_ids()[-1]
    bottom = panel.model.index(panel.row_count() - 1, 0)
    assert not view.viewport().rect().intersects(view.visualRect(bottom)), "the list is longer than the dock"
    window.controller.backendEvent.emit(JobStarted(window.controller.job(last).request, job_id=last))
    assert view.viewport().rect().intersects(view.visualRect(bottom))
    script.hold.set()
