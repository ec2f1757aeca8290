"""`studio generate` with A1111's extras: clip skip, hires fix, variation seeds."""

import pytest
from PIL import Image

from studio.cli import parse_args
from studio.core.generation.request import InvalidRequest
from studio.core.storage.outputs import PARAMETERS_KEY, read_request
from studio.headless_request import build_request
from tests.test_cli import _run


def test_generate_with_hires_fix_and_variations(tiny_model_dir, tmp_path, studio_home):
    out = tmp_path / "fox.png"
    result = _run("generate", "--prompt", "a fox", "--model", str(tiny_model_dir), "--steps", "2", "--size", "64x64",
                  "--seed", "5", "--sampler", "Euler", "--clip-skip", "2", "--hires-scale", "1.5", "--hires-steps", "1",
                  "--denoise", "0.5", "--hires-upscaler", "Lanczos", "--variation-seed", "9", "--variation-strength", "0.25",
                  "--seed-resize-from", "64x96", "--out", str(out), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(out)
    assert (request.clip_skip, request.hires_scale, request.hires_steps, request.hires_denoise, request.hires_upscaler) == \
        (2, 1.5, 1, 0.5, "Lanczos")
    assert (request.variation_seed, request.variation_strength, request.seed_resize_width, request.seed_resize_height) == \
        (9, 0.25, 64, 96)
    with Image.open(out) as image:  # .size alone reads no pixels: the file would stay open
        assert image.size == (96, 96)
    assert "step 3/3" in result.stderr  # two first-pass steps and one hires step, on one count
    assert "variation seed 9" in result.stdout
    text = Image.open(out).text[PARAMETERS_KEY]
    assert "Hires upscale: 1.5, Hires steps: 1, Hires upscaler: Lanczos" in text and "Clip skip: 2" in text


def _request(*flags):
    return build_request(parse_args(["generate", "--prompt", "x", "--model", "/models/m", "--seed", "1", *flags]))[0]


def test_flags_reach_the_request_and_defaults_change_nothing():
    plain = _request()
    assert (plain.clip_skip, plain.hires_scale, plain.variation_strength, plain.seed_resize_width) == (1, 1.0, 0.0, 0)
    random_variation = _request("--variation-strength", "0.3")
    assert random_variation.variation_strength == 0.3 and 0 <= random_variation.variation_seed < 2**32


@pytest.mark.parametrize(("flags", "message"), [
    (("--denoise", "0"), "Hires denoising strength must be above 0"),
    (("--clip-skip", "13"), "Clip skip must be between 1 and 12"),
    (("--hires-scale", "5"), "Hires upscale must be between 1 and 4"),
    (("--variation-strength", "2"), "Variation strength must be between 0 and 1"),
])
def test_out_of_range_extras_are_refused(flags, message):
    with pytest.raises(InvalidRequest, match=message):
        _request(*flags)


def test_unknown_upscaler_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parse_args(["generate", "--prompt", "x", "--hires-upscaler", "ESRGAN"])
    assert "--hires-upscaler" in capsys.readouterr().err
