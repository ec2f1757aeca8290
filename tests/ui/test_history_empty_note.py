"""An empty History says why: no images yet, or none match the search."""

import pytest
from PIL import Image

from studio.core.generation.request import GenerationRequest
from studio.core.storage.history import History
from studio.ui.history_panel import HistoryPanel


@pytest.fixture
def panel(qtbot, tmp_path):
    widget = HistoryPanel(History(tmp_path / "history.jsonl"))
    qtbot.addWidget(widget)
    widget.resize(300, 400)
    widget.show()
    yield widget
    assert widget.close_thumbnails(5)


def test_an_empty_history_and_an_empty_search_say_so(qtbot, panel, tmp_path):
    note = panel.empty_note
    assert note.isVisible() and note.text().startswith("No images yet.")
    path = tmp_path / "fox.png"
    Image.new("RGB", (64, 64)).save(path)
    panel.add_entry(path, GenerationRequest("a red fox", seed=1))
    assert not note.isVisible()
    panel.search.setText("whale")
    assert note.isVisible() and note.text().startswith("No images match “whale”.")
    assert note.geometry().width() > 100  # over the list, readable
    panel.search.setText("fox")
    assert not note.isVisible() and panel.model.rowCount() == 1


def test_tiles_of_any_shape_keep_their_seed_and_time_labels(qtbot, panel, tmp_path):
    from PySide6.QtCore import QSize, Qt

    shapes = {"wide": (768, 512), "tall": (512, 768), "small": (64, 64)}
    for name, size in shapes.items():  # the newest (shown first) is the small one
        path = tmp_path / f"{name}.png"
        Image.new("RGB", size, (200, 30, 30)).save(path)
        panel.add_entry(path, GenerationRequest(name, seed=len(name), width=size[0], height=size[1]))
    model = panel.model
    for row in range(3):
        model.data(model.index(row), Qt.ItemDataRole.DecorationRole)  # as the view asks when it paints
    qtbot.waitUntil(lambda: all(model.has_thumbnail(e.path) for e in model.entries), timeout=5000)
    for row in range(3):
        icon = model.data(model.index(row), Qt.ItemDataRole.DecorationRole)
        assert icon.availableSizes() == [QSize(96, 96)], model.entries[row].prompt  # one tile size for all
