"""`studio generate` checks every argument and path before torch is imported: a bad one is one
line and a non-zero exit within a second, not after loading a model and generating."""

import subprocess
import sys
import time

import pytest
from PIL import Image


def _run_checked(*args, env_home):
    """main() in a fresh interpreter that asserts torch was never imported."""
    code = (
        "import sys; from studio.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "STUDIO_HOME": str(env_home)},
    )
    return result, time.perf_counter() - started


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2) and len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def inputs(tmp_path):
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 64), "red").save(image)
    black = tmp_path / "black.png"
    Image.new("L", (64, 64), 0).save(black)
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "not-an-image.png").write_bytes(b"hello")
    (tmp_path / "vae.bin").write_bytes(b"\0" * 16)
    return tmp_path


CASES = [
    # (flags, the start of the one line)
    (("--model", "{tmp}/gone.safetensors"), "No model found at"),
    (("--model", "/etc/hostname"), "hostname is not a model file"),
    (("--out", "/proc/nope.png"), "--out: cannot write in /proc"),
    (("--out", "{tmp}"), "--out {tmp} is a folder; give a file name"),
    (("--out", "{tmp}", "--overwrite"), "--out {tmp} is a folder"),
    (("--out", "{tmp}/folder.png", "--overwrite"), "--out {tmp}/folder.png is a folder"),
    (("--out", "{tmp}/picture.jpg"), "--out {tmp}/picture.jpg must name a .png file"),
    (("--init-image", "{tmp}/gone.png"), "No image file at {tmp}/gone.png (--init-image)."),
    (("--init-image", "{tmp}/not-an-image.png"), "not-an-image.png is not an image the studio can read (--init-image)"),
    (("--init-image", "{tmp}/in.png", "--mask", "{tmp}/black.png"), "The mask black.png is empty"),
    (("--mask", "{tmp}/black.png"), "--mask needs --init-image"),
    (("--strength", "0.5"), "--strength needs --init-image"),
    (("--init-image", "{tmp}/in.png", "--mask-blur", "8"), "--mask-blur needs --mask"),
    (("--lora-dir", "{tmp}/no-loras"), "No folder at {tmp}/no-loras (--lora-dir)."),
    (("--vae", "{tmp}/vae.bin"), "vae.bin is not a .safetensors VAE"),
    (("--from", "{tmp}/in.png"), "This image carries no generation settings"),
]


@pytest.mark.parametrize(("flags", "start"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_arguments_fail_at_once_before_torch(tiny_model_dir, inputs, studio_home, flags, start):
    flags = [f.format(tmp=inputs) for f in flags]
    if "--model" not in flags:
        flags = ["--model", str(tiny_model_dir), *flags]
    result, seconds = _run_checked("generate", "--prompt", "x", "--steps", "1", *flags, env_home=studio_home)
    assert _one_line(result).startswith(f"studio: error: {start.format(tmp=inputs)}")
    assert seconds < 20  # the torch assertion is the real test; measured 0.4 s on a 2-core VM
    assert not list(inputs.glob("*.png.*")) and not (inputs / "picture.jpg").exists()


def test_argparse_mistakes_are_one_line_too(studio_home):
    result, _ = _run_checked("generate", "--prompt", "x", "--masked-content", "foo", env_home=studio_home)
    assert _one_line(result) == ("studio generate: error: argument --masked-content: choose original, fill, noise, "
                                 "not 'foo' (see studio generate --help)")


def test_a_prompt_or_from_is_needed(tiny_model_dir, studio_home):
    result, _ = _run_checked("generate", "--model", str(tiny_model_dir), env_home=studio_home)
    assert _one_line(result).startswith("studio: error: Give a --prompt, or --from IMAGE")


def test_a_read_only_output_folder_is_said_before_the_run(tiny_model_dir, tmp_path, studio_home):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result, _ = _run_checked("generate", "--prompt", "x", "--model", str(tiny_model_dir),
                                 "--out", str(locked / "a.png"), env_home=studio_home)
    finally:
        locked.chmod(0o700)
    assert _one_line(result).startswith(f"studio: error: --out: cannot write in {locked}")


def test_the_checks_leave_no_file_behind(tmp_path):
    from studio.headless_checks import check_writable_folder

    check_writable_folder(tmp_path / "new" / "deeper", "--out")
    assert list(tmp_path.iterdir()) == []  # nothing made, not even the folders
