"""`studio generate`: same engine, no Qt, one-line errors, non-zero exit on bad input."""

import subprocess
import sys

from studio.core.outputs import read_request


def _run(*args, env_home):
    code = (
        "import sys; from studio.cli import main; rc = main(sys.argv[1:]); "
        "assert 'PySide6' not in sys.modules, 'Qt was imported'; sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "STUDIO_HOME": str(env_home)},
    )


def test_generate_writes_png_without_qt(tiny_model_dir, tmp_path, studio_home):
    out = tmp_path / "cat.png"
    result = _run("generate", "--prompt", "a red circle", "--model", str(tiny_model_dir), "--steps", "3",
                  "--size", "64x64", "--seed", "42", "--sampler", "DDIM", "--cfg", "5", "--out", str(out),
                  env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(out)
    assert (request.seed, request.steps, request.sampler, request.guidance) == (42, 3, "DDIM", 5.0)
    assert "step 3/3" in result.stderr


def test_bad_size_is_one_line_and_nonzero(tiny_model_dir, studio_home):
    result = _run("generate", "--prompt", "x", "--model", str(tiny_model_dir), "--size", "100x64", env_home=studio_home)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["studio: error: Width 100 is not a multiple of 8 (try 96)."]


def test_missing_model_is_one_line_and_nonzero(tmp_path, studio_home):
    result = _run("generate", "--prompt", "x", "--model", str(tmp_path / "nope"), env_home=studio_home)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("studio: error: No model found at")


def test_unknown_sampler_is_refused(tiny_model_dir, studio_home):
    result = _run("generate", "--prompt", "x", "--model", str(tiny_model_dir), "--sampler", "Wizard", env_home=studio_home)
    assert result.returncode == 1 and "Unknown sampler 'Wizard'" in result.stderr
