"""`python -m studio` opens the window before torch or diffusers is imported."""

import os
import subprocess
import sys


def test_window_is_shown_before_torch_is_imported(studio_home):
    env = {**os.environ, "STUDIO_HOME": str(studio_home), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-m", "studio", "--exit-when-shown"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "window-shown" in result.stdout and "torch-loaded=False" in result.stdout
