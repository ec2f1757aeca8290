"""`studio generate`: same engine, no Qt, one-line errors, non-zero exit on bad input."""

import subprocess
import sys

import pytest

from studio.core.storage.outputs import read_request


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


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--steps", "0", "Steps must be between 1 and 150, not 0."),  # was: silently 20 steps
        ("--steps", "-3", "Steps must be between 1 and 150, not -3."),
        ("--batch", "0", "Batch count must be between 1 and 100, not 0."),
        ("--seed", "-1", "Seed must be between 0 and 4294967295, not -1."),
        ("--seed", str(2**32), f"Seed must be between 0 and 4294967295, not {2**32}."),
    ],
)
def test_out_of_range_numbers_are_refused(tiny_model_dir, studio_home, flag, value, message):
    result = _run("generate", "--prompt", "x", "--model", str(tiny_model_dir), flag, value, env_home=studio_home)
    assert _one_error_line(result) == f"studio: error: {message}"


@pytest.mark.slow  # one real (tiny) generation
def test_out_is_never_overwritten_without_overwrite(tiny_model_dir, tmp_path, studio_home):
    out = tmp_path / "cat.png"
    out.write_bytes(b"the artist's earlier picture")
    args = ("generate", "--prompt", "a red circle", "--model", str(tiny_model_dir), "--steps", "1", "--size", "64x64",
            "--cfg", "0", "--out", str(out))
    line = _one_error_line(_run(*args, env_home=studio_home))
    assert line.startswith(f"studio: error: {out} already exists; pass --overwrite")
    assert out.read_bytes() == b"the artist's earlier picture"

    result = _run(*args, "--overwrite", env_home=studio_home)
    assert result.returncode == 0, result.stderr
    assert read_request(out).guidance == 0.0  # guidance 0 is a real value, not "use the default"


def test_later_batch_files_are_not_overwritten_either(tiny_model_dir, tmp_path, studio_home):
    out = tmp_path / "cat.png"
    (tmp_path / "cat-2.png").write_bytes(b"keep me")
    result = _run("generate", "--prompt", "x", "--model", str(tiny_model_dir), "--batch", "2", "--out", str(out),
                  env_home=studio_home)
    assert _one_error_line(result).startswith(f"studio: error: {tmp_path / 'cat-2.png'} already exists")
    assert not out.exists() and (tmp_path / "cat-2.png").read_bytes() == b"keep me"


def test_batch_paths_name_the_rest_of_a_batch(tmp_path):
    from studio.headless import batch_paths

    assert batch_paths(tmp_path / "cat.png", 3) == [tmp_path / n for n in ("cat.png", "cat-2.png", "cat-3.png")]


# -- the window's command line: `studio IMAGE...` (desktop entry Exec=studio %F) ---------------

def test_image_paths_open_the_window_and_subcommands_still_parse():
    from studio.cli import parse_args

    args = parse_args(["--model", "m", "a.png", "b.png"])
    assert args.command is None and args.model == "m" and [str(p) for p in args.files] == ["a.png", "b.png"]
    args = parse_args(["--threads", "2", "generate", "--prompt", "x", "--threads", "3"])
    assert (args.command, args.prompt, args.threads, args.gen_threads) == ("generate", "x", 2, 3)
    assert parse_args([]).files == []


def test_a_missing_image_is_one_clear_line(tmp_path, capsys):
    from studio.cli import main

    assert main([str(tmp_path / "gone.png")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"studio: error: no such image file: {tmp_path / 'gone.png'}"]


def test_threads_flag_reaches_the_engine_through_the_environment(monkeypatch):
    from studio.cli import _use_threads
    from studio.engine.threads import ENV_VAR, cpu_threads

    monkeypatch.delenv(ENV_VAR, raising=False)
    _use_threads(3)
    assert cpu_threads() == 3
    _use_threads(0)  # 0: automatic again
    assert ENV_VAR not in __import__("os").environ


def test_generate_opens_a_single_file_sdxl_checkpoint_with_a_vae_file(tmp_path, studio_home):
    import torch

    from studio.engine.tiny_model import build_tiny_family
    from tests.checkpoint_files import write_single_file, write_vae_only

    pipe = build_tiny_family("sdxl")
    model = write_single_file(pipe, tmp_path / "my_xl_model.safetensors", dtype=torch.float16)
    vae = write_vae_only(tmp_path / "xl_vae.safetensors", pipe.vae)
    out = tmp_path / "xl.png"
    result = _run("generate", "--prompt", "a red circle", "--model", str(model), "--vae", str(vae), "--steps", "2",
                  "--size", "64x64", "--out", str(out), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(out)
    assert request.vae == str(vae) and len(request.model_hash) == 10
    from PIL import Image

    text = Image.open(out).text["parameters"]
    assert f"Model hash: {request.model_hash}, Model: my_xl_model, VAE: xl_vae.safetensors" in text


def test_generate_refuses_a_lora_given_as_the_model(tmp_path, studio_home):
    from tests.checkpoint_files import write_kohya_lora

    lora = write_kohya_lora(tmp_path / "style.safetensors")
    result = _run("generate", "--prompt", "x", "--model", str(lora), env_home=studio_home)
    assert result.returncode != 0 and "is a LoRA" in result.stderr and "Traceback" not in result.stderr


def test_memory_flags_reach_the_engine(tiny_model_dir, tmp_path, studio_home):
    """--vae-tiling on decodes in tiles (the tiny VAE's tiles are 32 px): other pixels than off."""
    import numpy as np
    from PIL import Image

    outs = {}
    for tiling in ("off", "on"):
        out = tmp_path / f"{tiling}.png"
        result = _run("generate", "--prompt", "a red circle", "--model", str(tiny_model_dir), "--steps", "2",
                      "--size", "64x64", "--seed", "1", "--vae-tiling", tiling, "--attention-slicing",
                      "--out", str(out), env_home=studio_home)
        assert result.returncode == 0, result.stderr
        outs[tiling] = np.asarray(Image.open(out))
    assert not np.array_equal(outs["off"], outs["on"])
