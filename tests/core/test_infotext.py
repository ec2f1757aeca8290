import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from studio.core.formats.infotext import MAX_INFOTEXT_CHARS, _scan_params, format_infotext, parse_infotext
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import PARAMETERS_KEY, OutputWriter, png_bytes, read_request


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


def test_and_prompts_round_trip_as_typed():
    """The prompt is stored as typed, weights after AND included (A1111's own infotext)."""
    request = GenerationRequest("a cat AND a dog :0.8\nAND [sun:moon:0.5] :-0.3", "blurry", 20, 7.0, 42, 512, 512,
                                "Euler a", model="/m/x")
    parsed = parse_infotext(format_infotext(request))
    assert parsed.prompt == request.prompt and parsed.negative_prompt == "blurry"
    assert parsed.params["Steps"] == "20"


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


# -- linear-time parsing (issue 9, item 3) -----------------------------------------------------

A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # A1111's own


@hsettings(max_examples=3000, deadline=None)
@given(line=st.text(alphabet='ab1_ :,"\\-/\t\ré,', max_size=40))
def test_scanner_finds_exactly_what_a1111s_regex_finds(line):
    assert _scan_params(line) == A1111_PARAM.findall(line)


@hsettings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(st.text(alphabet="ab -/", min_size=1, max_size=6),
                                st.text(alphabet='xy ,:"\\', max_size=8)), max_size=6))
def test_scanner_matches_a1111_on_key_value_lines(pairs):
    line = ", ".join(f"k{k}: {json.dumps(v) if i % 2 else v}" for i, (k, v) in enumerate(pairs))
    assert _scan_params(line) == A1111_PARAM.findall(line)


def _seconds(text):
    start = time.perf_counter()
    parse_infotext(text)
    return time.perf_counter() - start


ADVERSARIAL = {
    # A long word run without ':' made A1111's pattern rescan it from every position.
    "long last line": lambda n: "a cat\n" + "a" * n,
    "keys without colons": lambda n: "p\n" + "Steps 20 Sampler " * (n // 17),
    "open quotes": lambda n: 'p\nSteps: 1, Seed: 2, A: "' + "\\x" * (n // 2),
    "many params": lambda n: "p\n" + ", ".join(f"K{i}: {i}" for i in range(n // 10)),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_text_parses_in_linear_time(name):
    make = ADVERSARIAL[name]
    small, large = make(6_000), make(60_000)
    assert _seconds(large) < 0.5  # A1111's pattern: 80 s for 100 KB, 1.85 s for a 16,000-char line
    # 10x the input costs about 10x (quadratic would be 100x: 0.1 s -> 11 s for the long line);
    # best of 5, and a generous margin, against timer noise on a shared machine.
    t_small = min(_seconds(small) for _ in range(5))
    t_large = min(_seconds(large) for _ in range(5))
    assert t_large < 40 * t_small + 0.02


def test_16000_character_last_line_and_100kb_chunk_take_milliseconds():
    assert _seconds("prompt\n" + "x" * 16_000) < 0.5
    assert _seconds("prompt\n" + "Steps 1 " * 12_800) < 0.5  # 100 KB


def test_text_beyond_the_cap_is_ignored_but_what_came_before_is_parsed():
    head = "a cat\nNegative prompt: dog\nSteps: 5, Sampler: Euler, CFG scale: 7"
    parsed = parse_infotext(head + ", Seed: 3" + "," * (MAX_INFOTEXT_CHARS) + "Size: 8x8")
    assert parsed.prompt == "a cat" and parsed.negative_prompt == "dog"
    assert parsed.params["Seed"] == "3" and "Size" not in parsed.params
