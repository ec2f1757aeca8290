from PIL import Image

from studio.core.infotext import format_infotext, parse_infotext
from studio.core.outputs import PARAMETERS_KEY, OutputWriter, png_bytes, read_request
from studio.core.request import GenerationRequest


def test_format_matches_a1111_layout():
    request = GenerationRequest("a cat", "blurry", 20, 7.0, 42, 512, 768, "Euler a", model="/models/sd15")
    assert format_infotext(request) == (
        "a cat\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x768, Model: sd15, "
        "Version: DiffusionStudio 0.1.0"
    )


def test_negative_line_is_omitted_when_empty():
    assert "Negative prompt" not in format_infotext(GenerationRequest("a cat"))


def test_round_trip_keeps_multiline_prompts_and_quoted_values():
    request = GenerationRequest("line one\nline two", "bad,\nworse", 12, 5.5, 7, 64, 64, "DPM++ 2M Karras", model="/m/a,b")
    parsed = parse_infotext(format_infotext(request))
    assert parsed.prompt == "line one\nline two"
    assert parsed.negative_prompt == "bad,\nworse"
    assert parsed.params["Model"] == "a,b"
    assert parsed.params["Sampler"] == "DPM++ 2M Karras"
    assert parsed.params["Size"] == "64x64"


def test_parses_real_a1111_text_with_unknown_keys():
    text = (
        "masterpiece, (cat:1.2)\nNegative prompt: lowres\n"
        'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 1, Size: 512x512, '
        'Hires upscale: 2, Lora hashes: "a: 1, b: 2", Version: v1.9.4'
    )
    parsed = parse_infotext(text)
    assert parsed.prompt == "masterpiece, (cat:1.2)"
    assert parsed.params["Lora hashes"] == "a: 1, b: 2"
    assert parsed.params["Hires upscale"] == "2"


def test_text_without_params_is_all_prompt():
    assert parse_infotext("just a prompt").prompt == "just a prompt"
    assert parse_infotext("").params == {}


def test_png_carries_parameters_and_request(tmp_path):
    request = GenerationRequest("ein Bär im Schnee — 雪", seed=9, width=64, height=64)
    path, _ = OutputWriter(tmp_path).save(Image.new("RGB", (64, 64), "red"), request)
    with Image.open(path) as image:
        assert parse_infotext(image.text[PARAMETERS_KEY]).prompt == request.prompt  # iTXt (not Latin-1)
    assert read_request(path) == request


def test_writer_never_overwrites(tmp_path):
    writer = OutputWriter(tmp_path)
    request = GenerationRequest("x", seed=1)
    paths = [writer.save(Image.new("RGB", (8, 8)), request)[0] for _ in range(3)]
    assert len(set(paths)) == 3 and all(p.exists() for p in paths)
    assert [p.name for p in paths] == ["00001-1.png", "00002-1.png", "00003-1.png"]


def test_png_bytes_is_a_valid_png():
    data = png_bytes(Image.new("RGB", (8, 8)), GenerationRequest("x"))
    assert data.startswith(b"\x89PNG")
