"""Importing an A1111 styles.csv says which rows were skipped and why, and keeps a duplicate
name as "Name (2)" instead of losing the first row."""

from studio.core.generation.settings import Settings
from studio.core.storage.presets import PresetStore, builtin_presets_dir
from studio.ui.preset_bar import PresetBar

CSV = ('name,prompt,negative_prompt\n'
       'Moody,"{prompt}, moody light","bright, flat"\n'
       ',"{prompt}, nameless",\n'
       'Moody,"{prompt}, moodier",\n')


def test_a_styles_csv_import_says_why_rows_were_skipped_and_keeps_duplicates(qtbot, tmp_path):
    store = PresetStore(builtin_presets_dir(), tmp_path / "user")
    store.load()
    bar = PresetBar(store, current_settings=Settings)
    qtbot.addWidget(bar)
    messages = []
    bar.message.connect(messages.append)
    path = tmp_path / "styles.csv"
    path.write_text(CSV)
    imported = bar.import_presets(path)
    assert [p.name for p in imported] == ["Moody", "Moody (2)"]
    assert store.get("Moody").values == {"prompt": "{prompt}, moody light", "negative_prompt": "bright, flat"}
    assert store.get("Moody (2)").values == {"prompt": "{prompt}, moodier"}
    assert len(messages) == 1  # one line, reasons included: nothing said before it is replaced unread
    text = messages[0]
    assert text.startswith("Imported 2 preset(s) from styles.csv; 1 skipped.")
    assert "Row 3 skipped" in text and "kept as 'Moody (2)'" in text
