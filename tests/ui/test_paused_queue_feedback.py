"""A paused queue says so: Generate adds a job and the status line counts the waiting ones,
instead of keeping an old "Done…"."""

import threading


def test_generate_on_a_paused_queue_says_how_many_wait(qtbot, make_window, script):
    window = make_window()
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        window.job_view.generate()
    assert window.status_label.text().startswith("Done")
    window.queue_panel.pause_button.click()
    window.job_view.generate()
    assert window.status_label.text().startswith("Queue paused: 1 waiting.")
    window.job_view.generate()
    assert window.status_label.text().startswith("Queue paused: 2 waiting.")
    assert len(script.requests) == 1


def test_a_job_ending_on_a_paused_queue_says_the_queue_waits(qtbot, make_window, script):
    window = make_window()
    script.hold = threading.Event()
    window.job_view.generate()
    qtbot.waitUntil(script.held.is_set, timeout=5000)
    window.job_view.generate()
    window.queue_panel.pause_button.click()  # the running job finishes, the other waits
    with qtbot.waitSignal(window.job_view.jobEnded, timeout=5000):
        script.hold.set()
    text = window.status_label.text()
    assert text.startswith("Done") and text.endswith("Queue paused: 1 waiting. Resume it in the Queue panel to run it.")
