"""kill -9 at random moments while the studio saves, for every file it writes: afterwards each
file holds a complete version (the old or a new one) and no temp file is left once the studio's
startup cleanup ran. History is an append-only log: at most the one line being written is torn,
and loading heals it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from studio.core.generation.settings import load_settings
from studio.core.storage.atomic import is_temp_file_name
from studio.core.storage.history import History
from studio.core.storage.outputs import read_request
from studio.core.storage.paths import startup_cleanup
from studio.core.storage.presets import PresetStore
from studio.core.storage.session import Session, load_session, read_session_image, restore_session_images

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 6  # per kind of file; each kill lands at a random moment of a save loop

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from studio.core.storage.paths import data_home, outputs_dir, settings_file

    kind = sys.argv[1]
    n = 0
    if kind == "settings":
        from studio.core.generation.settings import Settings, save_settings
        def write(n): save_settings(Settings(prompt=f"v{n} " + "x" * (n % 3000), steps=1 + n % 150), settings_file())
    elif kind == "session":
        from studio.core.storage.atomic import write_bytes_atomic
        from studio.core.storage.session import Session, save_session, session_images_dir
        from studio.core.generation.settings import Settings
        import io
        def write(n):
            buffer = io.BytesIO()
            Image.fromarray(np.full((256, 256, 3), n % 256, np.uint8)).save(buffer, format="PNG", compress_level=1)
            canvas = session_images_dir() / "canvas.png"
            write_bytes_atomic(canvas, buffer.getvalue())
            save_session(Session(Settings(prompt=f"v{n}"), str(canvas), None))
    elif kind == "history":
        from studio.core.storage.history import History
        from studio.core.generation.request import GenerationRequest
        history = History()
        history.load()
        def write(n):
            history.add(f"/outputs/{n}.png", GenerationRequest(prompt=f"v{n} " + "y" * (n % 2000)))
            if n % 7 == 0:
                history.delete(f"/outputs/{n - 3}.png", delete_file=False)  # the atomic full rewrite
    elif kind == "presets":
        from studio.core.storage.presets import PresetStore
        from studio.core.generation.settings import Settings
        store = PresetStore(data_home() / "none", data_home() / "presets")
        store.load()
        def write(n): store.save("Keep", Settings(steps=1 + n % 150, prompt="z" * (n % 5000)), ["steps", "prompt"])
    elif kind == "outputs":
        from studio.core.storage.outputs import OutputWriter
        from studio.core.generation.request import GenerationRequest
        writer = OutputWriter(outputs_dir())
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
        def write(n): writer.save(image, GenerationRequest(prompt=f"v{n}", seed=n))
    write(0)
    print("ready", flush=True)
    while True:
        n += 1
        write(n)
""")


def _kill_while_writing(kind: str, home: Path, rng: random.Random) -> None:
    env = {**os.environ, "STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, kind], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.01, 0.25))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def _age_temp_files(home: Path) -> int:
    """startup_cleanup leaves temp files younger than 10 minutes alone (another running studio
    may be writing them); these are from processes that are dead, so make them old."""
    count = 0
    for path in home.rglob("*"):
        if is_temp_file_name(path.name):
            os.utime(path, (time.time() - 3600, time.time() - 3600))
            count += 1
    return count


def _no_temp_files_after_cleanup(home: Path) -> None:
    _age_temp_files(home)
    startup_cleanup()
    restore_session_images(Session())  # the session's image folder is cleaned where it is read
    left = [str(p) for p in home.rglob("*") if is_temp_file_name(p.name)]
    assert not left, left


@pytest.mark.parametrize("kind", ["settings", "session", "history", "presets", "outputs"])
def test_sigkill_during_saves_leaves_complete_files(kind, studio_home):
    rng = random.Random(sum(map(ord, kind)))  # fixed per kind (hash() is salted per process)
    for _ in range(KILLS):
        _kill_while_writing(kind, studio_home, rng)
        if kind == "settings":
            settings, warning = load_settings(studio_home / "settings.json")
            assert warning is None and settings.prompt.startswith("v"), warning
        elif kind == "session":
            session, warning = load_session()
            assert warning is None and session is not None and session.settings.prompt.startswith("v")
            assert read_session_image(session.canvas_image, "RGB").shape == (256, 256, 3)
        elif kind == "history":
            history = History()
            history.load()  # never raises; a torn last line is healed (history.py _heal_torn_tail)
            lines = history.index_path.read_bytes().split(b"\n")
            torn = sum(1 for line in lines if line and not line.endswith(b"}"))
            assert torn == 0 and lines[-1] == b""  # each kill tears at most the last line, healed at load
            assert len(history) > 0 and all(e.prompt.startswith("v") for e in history.entries())
        elif kind == "presets":
            store = PresetStore(studio_home / "none", studio_home / "presets")
            assert store.load() == []
            assert 1 <= store.get("Keep").values["steps"] <= 150
        elif kind == "outputs":
            pngs = list((studio_home / "outputs").rglob("*.png"))
            assert pngs
            for png in pngs:
                assert png.stat().st_size > 0, png
                with Image.open(png) as image:
                    image.verify()
                assert read_request(png) is not None, png
    _no_temp_files_after_cleanup(studio_home)
