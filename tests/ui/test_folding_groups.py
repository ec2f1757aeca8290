"""Hires fix and Variation: off, each folds to its check box and title (no empty frame under it);
on, it shows its fields."""

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QGroupBox, QStyle, QStyleOptionGroupBox

from studio.ui.generation_panel import GenerationPanel


def _shown_panel(qtbot) -> GenerationPanel:
    panel = GenerationPanel()
    qtbot.addWidget(panel)
    panel.resize(380, 900)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_folded_groups_are_only_their_title_line(qtbot):
    panel = _shown_panel(qtbot)
    for name, group in (("hiresGroup", panel.hires_group), ("variationGroup", panel.variation_group)):
        assert panel.findChild(QGroupBox, name) is group and not group.isChecked()
        assert not group.contents.isVisible()
        assert group.height() <= group.header_height() < 40  # no strip of empty frame below it
        group.setChecked(True)
        qtbot.waitUntil(lambda g=group: g.contents.isVisible() and g.height() > 3 * g.header_height(), timeout=3000)
        group.setChecked(False)
        qtbot.waitUntil(lambda g=group: g.height() <= g.header_height(), timeout=3000)


def test_the_title_line_still_switches_the_feature_on(qtbot):
    panel = _shown_panel(qtbot)
    group = panel.hires_group
    option = QStyleOptionGroupBox()
    group.initStyleOption(option)
    box = group.style().subControlRect(QStyle.ComplexControl.CC_GroupBox, option, QStyle.SubControl.SC_GroupBoxCheckBox, group)
    qtbot.mouseClick(group, Qt.MouseButton.LeftButton, pos=QPoint(box.center()))
    assert group.isChecked() and group.contents.isVisible()
    assert panel.hires_scale.isVisible()
