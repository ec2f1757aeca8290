from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QLineEdit, QListView

from studio.core.formats.metadata import apply_fields
from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import Settings
from studio.core.storage.history import History
from studio.core.storage.outputs import png_bytes
from studio.ui.drop import dropped_image_paths, has_dropped_images
from studio.ui.history_panel import EntryRole, HistoryPanel, read_thumbnail


def _image(folder: Path, name: str, request: GenerationRequest, size=(128, 96)) -> Path:
    path = folder / name
    path.write_bytes(png_bytes(Image.new("RGB", size, (200, 30, 30)), request))
    return path


@pytest.fixture
def panel(qtbot, tmp_path):
    widget = HistoryPanel(History(tmp_path / "history.jsonl"))
    qtbot.addWidget(widget)
    widget.resize(400, 400)
    widget.show()
    yield widget
    assert widget.close_thumbnails(5), "the thumbnail thread ended"


@pytest.fixture
def three(panel, tmp_path):
    made = []
    for i, prompt in enumerate(["a red fox", "a blue whale", "red sunset over sea"]):
        request = GenerationRequest(prompt=prompt, negative_prompt=f"neg {i}", seed=100 + i, width=64, height=64)
        path = _image(tmp_path, f"{i}.png", request)
        panel.add_entry(path, request)
        made.append((path, request))
    return made


def test_named_icon_mode_view(panel):
    view = panel.findChild(QListView, "historyView")
    assert view.accessibleName() == "History"
    assert view.viewMode() == QListView.ViewMode.IconMode
    assert panel.findChild(QLineEdit, "historySearch") is not None


def test_add_entry_shows_newest_first_and_persists(panel, three, tmp_path):
    rows = [panel.model.index(r).data(EntryRole).prompt for r in range(panel.model.rowCount())]
    assert rows == ["red sunset over sea", "a blue whale", "a red fox"]
    again = History(tmp_path / "history.jsonl")
    again.load()
    assert len(again) == 3


def test_thumbnails_load_lazily_and_small(qtbot, panel, three):
    path = str(three[0][0])
    assert not panel.model.has_thumbnail(path)  # nothing decoded before the view paints
    qtbot.waitUntil(lambda: all(panel.model.has_thumbnail(str(p)) for p, _ in three), timeout=3000)
    assert read_thumbnail(path, 48).shape == (36, 48, 3)  # scaled down, aspect kept
    assert read_thumbnail(str(Path(path).with_name("missing.png"))) is None


def test_search_filters_case_insensitively_with_and(qtbot, panel, three):
    panel.search.setText("RED")
    assert panel.model.rowCount() == 2
    panel.search.setText("red fox")
    assert panel.model.rowCount() == 1 and panel.model.index(0).data(EntryRole).prompt == "a red fox"
    panel.search.clear()
    assert panel.model.rowCount() == 3


def test_view_and_restore_signals(qtbot, panel, three):
    assert not panel.restore_all_action.isEnabled()  # nothing selected yet
    path, request = three[1]
    assert panel.select_path(path)
    with qtbot.waitSignal(panel.viewRequested) as viewed:
        panel.view_action.trigger()
    assert viewed.args == [str(path)]
    with qtbot.waitSignal(panel.restoreRequested) as restored:
        panel.restore_seed_action.trigger()
    fields, what = restored.args
    assert what == "seed"
    after = apply_fields(Settings(prompt="keep", random_seed=True), fields, what)
    assert (after.seed, after.prompt, after.random_seed) == (101, "keep", False)
    with qtbot.waitSignal(panel.restoreRequested) as restored:
        panel.restore_all_action.trigger()
    after = apply_fields(Settings(), *restored.args)
    assert (after.prompt, after.negative_prompt, after.seed, after.width) == ("a blue whale", "neg 1", 101, 64)
    with qtbot.waitSignal(panel.restoreRequested) as restored:
        panel.restore_prompt_action.trigger()
    assert restored.args[1] == "prompt"


def test_double_click_activates_view(qtbot, panel, three):
    path, _ = three[0]
    panel.select_path(path)
    with qtbot.waitSignal(panel.viewRequested) as viewed:
        panel.view.activated.emit(panel.view.currentIndex())
    assert viewed.args == [str(path)]


def test_delete_removes_file_and_entry(qtbot, panel, three):
    path, _ = three[2]
    panel.select_path(path)
    with qtbot.waitSignal(panel.entryDeleted) as deleted:
        assert panel.delete_selected(confirm=False)
    assert deleted.args == [str(path)]
    assert not path.exists() and panel.model.rowCount() == 2
    assert panel.history.get(path) is None


def test_delete_tolerates_file_already_gone(qtbot, panel, three):
    path, _ = three[0]
    path.unlink()
    panel.select_path(path)
    assert panel.delete_selected(confirm=False) and panel.model.rowCount() == 2


def test_drop_returns_only_existing_local_images(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"x")
    jpg = tmp_path / "B.JPG"
    jpg.write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png)), QUrl.fromLocalFile(str(tmp_path / "notes.txt")),
                  QUrl("https://example.com/c.png"), QUrl.fromLocalFile(str(tmp_path / "gone.png")),
                  QUrl.fromLocalFile(str(jpg)), QUrl.fromLocalFile(str(png)), QUrl.fromLocalFile(str(tmp_path))])
    assert dropped_image_paths(mime) == [png, jpg]
    assert has_dropped_images(mime)
    text_only = QMimeData()
    text_only.setText("hello")
    assert dropped_image_paths(text_only) == [] and not has_dropped_images(None)
