import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from studio.core.generation.settings import Settings
from studio.core.storage.session import Session, clear_session, load_session, save_session, session_file

REPO = Path(__file__).resolve().parents[2]


def test_session_round_trip_in_data_home(studio_home):
    session = Session(Settings(prompt="a cat 猫", steps=12, guidance=3.5, random_seed=False, seed=7),
                      canvas_image="/pics/in.png", mask="/pics/mask.png")
    save_session(session)
    assert session_file() == studio_home / "session.json" and session_file().is_file()
    loaded, warning = load_session()
    assert warning is None
    assert loaded.settings == session.settings
    assert (loaded.canvas_image, loaded.mask) == ("/pics/in.png", "/pics/mask.png")
    assert loaded.saved_at > 0


def test_no_session_yet():
    assert load_session() == (None, None)


def test_damaged_session_is_set_aside(tmp_path):
    path = tmp_path / "session.json"
    path.write_text('{"settings": ')
    loaded, warning = load_session(path)
    assert loaded is None and "could not be restored" in warning
    assert not path.exists() and len(list(tmp_path.glob("session.json.unreadable-*"))) == 1


def test_wrong_types_fall_back_per_field(tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"format": 1, "settings": {"prompt": "kept", "steps": "x", "guidance": 4},
                                "canvas_image": 5, "mask": "/m.png"}))
    loaded, warning = load_session(path)
    assert warning is None
    assert loaded.settings.prompt == "kept" and loaded.settings.steps == Settings().steps
    assert loaded.settings.guidance == 4.0
    assert loaded.canvas_image is None and loaded.mask == "/m.png"


def test_newer_format_is_not_misread(tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"format": 2, "settings": {"prompt": "x"}}))
    loaded, warning = load_session(path)
    assert loaded is None and "format" in warning


def test_clear_session(tmp_path):
    path = tmp_path / "session.json"
    save_session(Session(Settings(prompt="x")), path)
    clear_session(path)
    clear_session(path)  # twice is fine
    assert load_session(path) == (None, None)


def test_crash_after_autosave_brings_the_prompt_back(tmp_path):
    # A process autosaves, then dies without any cleanup; the next start gets the prompt back.
    code = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from studio.core.storage.session import Session, save_session
        from studio.core.generation.settings import Settings
        save_session(Session(Settings(prompt="unsaved masterpiece", steps=9)), Path(sys.argv[1]))
        os._exit(1)
    """)
    path = tmp_path / "session.json"
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    loaded, _ = load_session(path)
    assert loaded.settings.prompt == "unsaved masterpiece" and loaded.settings.steps == 9


# -- damaged state (issue 9, item 4) -----------------------------------------------------------
def test_deeply_nested_session_is_set_aside(tmp_path):
    path = tmp_path / "session.json"
    path.write_text('{"settings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    loaded, warning = load_session(path)
    assert loaded is None and "could not be restored" in warning
    assert not path.exists() and len(list(tmp_path.glob("session.json.unreadable-*"))) == 1


def test_session_numbers_too_big_for_qt_are_clamped(tmp_path):
    path = tmp_path / "session.json"
    settings = {"prompt": "kept", "steps": 2**31, "seed": 2**63, "width": 2**40, "guidance": 1e300,
                "batch_count": -5, "mask_blur": 10**100}
    path.write_text(json.dumps({"format": 1, "settings": settings, "saved_at": 10**400}))
    loaded, warning = load_session(path)
    assert warning is None and loaded.settings.prompt == "kept"
    s = loaded.settings
    assert (s.steps, s.seed, s.width, s.guidance, s.batch_count, s.mask_blur) == (150, 2**32 - 1, 4096, 50.0, 1, 64)
    assert loaded.saved_at == 0.0


def test_a_folder_given_as_a_session_image_is_refused_clearly(tmp_path):
    import pytest

    from studio.core.storage.session import SessionImageError, read_session_image

    with pytest.raises(SessionImageError, match="not a regular file"):
        read_session_image(tmp_path, "RGB")
