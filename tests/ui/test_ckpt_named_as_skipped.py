"""A pickled .ckpt in a model folder is named among the skipped files, with the reason, in the
Rescan entry's tooltip (it is never opened)."""

from PySide6.QtCore import Qt

from studio.core.generation.settings import Settings
from studio.core.models.model_library import scan_models
from studio.ui.model_picker import ACTION_ROLE, RESCAN


def test_a_ckpt_is_listed_as_skipped_with_the_reason(qtbot, make_window, tmp_path):
    folder = tmp_path / "Stable-diffusion"
    folder.mkdir()
    (folder / "oldModel.ckpt").write_bytes(b"\x80\x02not opened")
    models, skipped = scan_models([folder])
    assert models == [] and len(skipped) == 1 and "oldModel.ckpt is a pickled checkpoint" in skipped[0]
    window = make_window(Settings(model="/models/fake", model_dirs=[str(folder)], width=64, height=64, steps=2))
    qtbot.waitUntil(lambda: window.picker.library.scanned, timeout=10000)
    combo = window.model_combo
    rescan = next(i for i in range(combo.count()) if combo.itemData(i, ACTION_ROLE) == RESCAN)
    tooltip = combo.itemData(rescan, Qt.ItemDataRole.ToolTipRole)
    assert "Skipped:" in tooltip and "oldModel.ckpt is a pickled checkpoint" in tooltip
