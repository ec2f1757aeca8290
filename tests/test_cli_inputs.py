"""`studio generate` from an input image (img2img), with a mask (inpainting), and `--from`:
the recipe of an image made again, any flag overriding its field."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli import parse_args
from studio.core.generation.request import InpaintArea, MaskedContent, Mode
from studio.core.storage.outputs import PARAMETERS_KEY, read_request
from studio.headless_request import build_request
from tests.test_cli import _run


@pytest.fixture
def picture(tmp_path):
    image = tmp_path / "in.png"
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[:, :48] = (200, 30, 30)
    pixels[:, 48:] = (30, 30, 200)
    Image.fromarray(pixels).save(image)
    mask = tmp_path / "mask.png"
    hole = np.zeros((64, 96), np.uint8)
    hole[16:48, 32:64] = 255
    Image.fromarray(hole).save(mask)
    return image, mask


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _request(*flags):
    return build_request(parse_args(["generate", "--model", "/models/m", *flags]))[0]


def test_mode_follows_from_the_inputs_given(picture):
    image, mask = picture
    assert _request("--prompt", "x").mode is Mode.TXT2IMG
    img2img = _request("--prompt", "x", "--init-image", str(image), "--strength", "0.4")
    assert (img2img.mode, img2img.init_image, img2img.strength) == (Mode.IMG2IMG, str(image), 0.4)
    assert (img2img.width, img2img.height) == (96, 64)  # the input's own size when --size is not given
    inpaint = _request("--prompt", "x", "--init-image", str(image), "--mask", str(mask), "--mask-blur", "2",
                       "--inpaint-area", "masked", "--inpaint-padding", "8", "--masked-content", "noise")
    assert (inpaint.mode, inpaint.mask, inpaint.mask_blur, inpaint.inpaint_padding) == (Mode.INPAINT, str(mask), 2, 8)
    assert (inpaint.inpaint_area, inpaint.masked_content) == (InpaintArea.ONLY_MASKED, MaskedContent.LATENT_NOISE)


@pytest.mark.slow  # two tiny generations
def test_img2img_and_inpaint_from_the_command_line(tiny_model_dir, picture, tmp_path, studio_home):
    image, mask = picture
    common = ("--prompt", "a red circle", "--model", str(tiny_model_dir), "--steps", "2", "--seed", "3")
    out = tmp_path / "img2img.png"
    result = _run("generate", *common, "--init-image", str(image), "--strength", "0.5", "--out", str(out),
                  env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(out)
    assert (request.mode, request.strength, request.width, request.height) == (Mode.IMG2IMG, 0.5, 96, 64)
    assert "Denoising strength: 0.5" in Image.open(out).text[PARAMETERS_KEY]

    out = tmp_path / "inpaint.png"
    result = _run("generate", *common, "--init-image", str(image), "--mask", str(mask), "--mask-blur", "0",
                  "--masked-content", "fill", "--out", str(out), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(out)
    assert (request.mode, request.mask_blur, request.masked_content) == (Mode.INPAINT, 0, MaskedContent.FILL)
    before, after = _pixels(image), _pixels(out)
    outside = np.ones((64, 96), bool)
    outside[16:48, 32:64] = False
    assert np.array_equal(after[outside], before[outside])  # a hard mask keeps every pixel outside it
    assert not np.array_equal(after[~outside], before[~outside])
    assert (tmp_path / "inpaint-init.png").exists() and request.mask == str(tmp_path / "inpaint-mask.png")


@pytest.mark.slow  # four tiny generations
def test_from_replays_a_studio_png_pixel_for_pixel(tiny_model_dir, picture, tmp_path, studio_home):
    image, mask = picture
    first = tmp_path / "first.png"
    result = _run("generate", "--prompt", "a (red:1.2) circle", "--negative", "blue", "--model", str(tiny_model_dir),
                  "--steps", "3", "--size", "64x64", "--seed", "11", "--sampler", "Euler a", "--cfg", "4",
                  "--variation-strength", "0.3", "--out", str(first), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    again = tmp_path / "again.png"
    result = _run("generate", "--from", str(first), "--out", str(again), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(_pixels(again), _pixels(first))
    assert read_request(again) == read_request(first)

    changed = tmp_path / "changed.png"
    result = _run("generate", "--from", str(first), "--seed", "12", "--steps", "2", "--out", str(changed),
                  env_home=studio_home)
    assert result.returncode == 0, result.stderr
    request = read_request(changed)
    assert (request.seed, request.steps, request.prompt, request.variation_seed) == \
        (12, 2, "a (red:1.2) circle", read_request(first).variation_seed)
    assert not np.array_equal(_pixels(changed), _pixels(first))

    # An inpainting is replayed from the copies of its inputs saved beside it.
    painted = tmp_path / "painted.png"
    result = _run("generate", "--prompt", "x", "--model", str(tiny_model_dir), "--steps", "2", "--seed", "5",
                  "--init-image", str(image), "--mask", str(mask), "--out", str(painted), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    image.unlink()
    mask.unlink()
    replayed = tmp_path / "replayed.png"
    result = _run("generate", "--from", str(painted), "--out", str(replayed), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    assert read_request(replayed).mode is Mode.INPAINT
    assert np.array_equal(_pixels(replayed), _pixels(painted))


def test_from_reads_a1111_parameters_and_flags_override(tmp_path, studio_home):
    source = tmp_path / "a1111.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a fox, <lora:x:0.5>\nNegative prompt: blur\nSteps: 12, Sampler: Euler a, CFG scale: 5, "
                                "Seed: 77, Size: 64x96, Model hash: abc, Model: someModel, Clip skip: 2")
    Image.new("RGB", (64, 96)).save(source, pnginfo=info)
    args = parse_args(["generate", "--from", str(source), "--model", "/models/m", "--steps", "4"])
    request, notes = build_request(args)
    assert (request.prompt, request.negative_prompt, request.seed, request.sampler, request.guidance) == \
        ("a fox, <lora:x:0.5>", "blur", 77, "Euler a", 5.0)
    assert (request.steps, request.width, request.height, request.clip_skip, request.model) == \
        (4, 64, 96, 2, "/models/m")
    assert request.mode is Mode.TXT2IMG and request.batch_count == 1
    assert notes == []  # --model chose the model: nothing to say
    request, notes = build_request(parse_args(["generate", "--from", str(source)]))
    assert Path(request.model).name == "demo-model"  # the last one used, else the demo model
    assert notes == ["the image names model someModel, which is not looked up: using demo-model, the last model "
                     "used (pass --model to choose another)."]
