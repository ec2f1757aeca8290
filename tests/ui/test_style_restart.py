"""The active style belongs to the session: a restart (a normal quit or a crash) brings it back
with the prompt it wraps, so the restored jobs and the next Generate agree."""

from studio.core.generation.settings import Settings, load_settings


def _apply(window, name):
    bar = window.recall.preset_bar
    bar.select(name)
    bar.apply_button.click()


def test_the_style_comes_back_after_a_quit(qtbot, make_window, script, tmp_path):
    window = make_window()
    window.panel.prompt.setPlainText("a harbour")
    _apply(window, "Cinematic")
    window.close()
    assert load_settings(tmp_path / "settings.json")[0].style_name == "Cinematic"
    again = make_window(Settings(model="/models/fake"))
    chip = again.panel.style_chip
    assert chip.isVisible() and chip.style.name == "Cinematic"
    with qtbot.waitSignal(again.job_view.jobEnded, timeout=5000):
        again.job_view.generate()
    assert script.requests[-1].prompt.startswith("cinematic still of a harbour")


def test_the_style_comes_back_after_a_crash_and_a_removed_one_stays_removed(qtbot, make_window):
    window = make_window()
    _apply(window, "Cinematic")
    window.session.save_now().result(timeout=10)
    crashed = make_window(Settings(model="/models/fake"))  # no closeEvent: only the autosave
    assert crashed.panel.style_chip.style.name == "Cinematic"
    crashed.panel.style_chip.remove_button.click()
    crashed.session.save_now().result(timeout=10)
    again = make_window(Settings(model="/models/fake"))
    assert again.panel.style_chip.style is None and not again.panel.style_chip.isVisible()
