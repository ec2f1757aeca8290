"""`python -m studio` opens the window before torch or diffusers is imported."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image


def _launch(studio_home, *args):
    env = {**os.environ, "STUDIO_HOME": str(studio_home), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "studio", "--exit-when-shown", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_window_is_shown_before_torch_is_imported(studio_home):
    result = _launch(studio_home)
    assert result.returncode == 0, result.stderr
    assert "window-shown" in result.stdout and "torch-loaded=False" in result.stdout
    assert "icon=set" in result.stdout  # the shipped icon (resources/icons) is the window icon


def test_an_image_named_on_the_command_line_opens_in_the_window(studio_home, tmp_path):
    """The desktop entry runs `studio %F` for "Open with"; it was an argparse error."""
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 80, 3), 90, np.uint8)).save(path)
    result = _launch(studio_home, str(path))
    assert result.returncode == 0, result.stderr
    assert "document=80x48" in result.stdout and "torch-loaded=False" in result.stdout
