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
