"""Clip skip, hires fix, variation seeds and LoRA hashes in A1111's infotext, both ways."""

from dataclasses import replace

import numpy as np
import pytest

from studio.core.formats.infotext import format_infotext, parse_infotext
from studio.core.formats.metadata import apply_fields, from_a1111, parse_chunks
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.generation.settings import Settings, request_from_settings, settings_from_request

BASE = GenerationRequest("a fox <lora:detail:0.6>", "blurry", 24, 6.5, 1234, 512, 640, "Euler a", model="/models/m")

CASES = {
    "clip skip": (replace(BASE, clip_skip=2), "Clip skip: 2"),
    "hires": (replace(BASE, hires_scale=1.5, hires_steps=12, hires_denoise=0.55, hires_upscaler="Latent (nearest)"),
              "Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: Latent (nearest)"),
    "hires, steps as the first pass": (replace(BASE, hires_scale=2.0, hires_denoise=0.7, hires_upscaler="Lanczos"),
                                       "Denoising strength: 0.7, Hires upscale: 2, Hires upscaler: Lanczos"),
    "variation": (replace(BASE, variation_seed=99, variation_strength=0.3), "Variation seed: 99, Variation seed strength: 0.3"),
    "resize seed": (replace(BASE, seed_resize_width=448, seed_resize_height=576), "Seed resize from: 448x576"),
}
NEW_FIELDS = ("clip_skip", "hires_scale", "hires_steps", "hires_denoise", "hires_upscaler", "variation_seed",
              "variation_strength", "seed_resize_width", "seed_resize_height")


@pytest.mark.parametrize("case", CASES)
def test_each_key_is_written_as_a1111_writes_it_and_read_back(case):
    request, expected = CASES[case]
    text = format_infotext(request)
    assert expected in text
    meta = from_a1111(text)
    restored = request_from_settings(apply_fields(Settings(random_seed=False), meta.fields), request.model)
    for name in NEW_FIELDS + ("prompt", "seed", "steps", "width", "height"):
        if name == "variation_seed" and request.variation_strength == 0:
            continue  # A1111 writes no variation seed without a strength: it changes nothing
        if name.startswith("hires_") and name != "hires_scale" and request.hires_scale == 1:
            continue
        assert getattr(restored, name) == getattr(request, name), name
    assert "<lora:detail:0.6>" in restored.prompt


def test_keys_come_in_a1111_order():
    request = replace(BASE, clip_skip=3, hires_scale=2, hires_steps=5, variation_seed=7, variation_strength=0.25,
                      seed_resize_width=512, seed_resize_height=512)
    keys = list(parse_infotext(format_infotext(request)).params)
    assert keys == ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Variation seed", "Variation seed strength",
                    "Seed resize from", "Denoising strength", "Clip skip", "Hires upscale", "Hires steps",
                    "Hires upscaler", "Version"]


def test_unused_extras_are_not_written():
    text = format_infotext(replace(BASE, hires_scale=1.0, variation_seed=5, variation_strength=0.0, clip_skip=1))
    for key in ("Clip skip", "Hires", "Variation", "Seed resize", "Denoising strength", "Lora hashes"):
        assert key not in text
    image_to_image = replace(BASE, mode=Mode.IMG2IMG, init_image="in.png", strength=0.4, hires_scale=2, variation_strength=0.5)
    text = format_infotext(image_to_image)  # both are txt2img only: img2img ignores them
    assert "Denoising strength: 0.4" in text and "Hires" not in text and "Variation" not in text


def test_absent_keys_mean_off_so_a_drop_reproduces_the_picture():
    meta = parse_chunks({"parameters": "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"})
    on = Settings(clip_skip=2, hires_fix=True, hires_scale=3.0, variation=True, variation_strength=0.4)
    restored = apply_fields(on, meta.fields)
    assert (restored.clip_skip, restored.hires_fix, restored.variation) == (1, False, False)
    assert restored.hires_scale == 3.0  # off, but the artist's number is kept for next time
    request = request_from_settings(restored, "m")
    assert (request.clip_skip, request.hires_scale, request.variation_strength) == (1, 1.0, 0.0)


def test_img2img_denoising_strength_stays_strength():
    meta = from_a1111("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.35")
    assert meta.fields["strength"] == 0.35 and not meta.fields["hires_fix"]


def test_a1111_upscalers_and_hires_resize():
    esrgan = from_a1111("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.4, "
                        "Hires upscale: 2, Hires upscaler: R-ESRGAN 4x+")
    assert esrgan.fields["hires_upscaler"] == "Lanczos" and esrgan.extras["Hires upscaler"] == "R-ESRGAN 4x+"
    resize = from_a1111("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x768, Denoising strength: 0.4, "
                        "Hires resize: 1024x1536, Hires upscaler: latent (bicubic)")
    fields = resize.fields
    assert (fields["hires_fix"], fields["hires_scale"], fields["hires_upscaler"]) == (True, 2.0, "Latent (bicubic)")
    odd = from_a1111("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x768, Hires resize: 1024x1024")
    assert not odd.fields["hires_fix"] and odd.extras["Hires resize"] == "1024x1024"


def test_hostile_values_are_clamped_or_kept_as_extras():
    text = ("p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Clip skip: 99, Hires upscale: 1e400, "
            "Hires steps: -3, Variation seed: 99999999999, Variation seed strength: 7, Seed resize from: 10x-2")
    meta = parse_chunks({"parameters": text})
    settings = apply_fields(Settings(), meta.fields)
    assert settings.clip_skip == 12 and settings.hires_steps == 0 and settings.variation_strength == 1.0
    assert not settings.hires_fix and meta.extras["Hires upscale"] == "1e400"
    assert meta.extras["Variation seed"] == "99999999999" and meta.extras["Seed resize from"] == "10x-2"
    request_from_settings(settings, "m").validated()  # whatever came in, Generate accepts it


def test_studio_requests_restore_their_extras_exactly():
    request = replace(BASE, clip_skip=2, hires_scale=1.25, hires_steps=3, hires_upscaler="Nearest",
                      variation_seed=8, variation_strength=0.75, seed_resize_width=256, seed_resize_height=320)
    settings = settings_from_request(Settings(), request)
    assert request_from_settings(settings, request.model) == request
    unknown = settings_from_request(Settings(), replace(request, hires_upscaler="SwinIR_4x"))
    assert unknown.hires_upscaler == "Lanczos"  # what the engine runs for an upscaler it lacks


def _write_lora(path, payload: bytes) -> None:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)


def test_lora_hashes_name_the_files_found(tmp_path):
    pytest.importorskip("studio.core.generation.lora_tags")
    from studio.core.generation.lora_tags import lora_hash

    folder = tmp_path / "Lora"
    (folder / "sub").mkdir(parents=True)
    _write_lora(folder / "detail.safetensors", b"\x01" * 16)
    _write_lora(folder / "sub" / "style.safetensors", b"\x02" * 16)
    request = replace(BASE, prompt="a fox <lora:detail:0.6> <lora:style:1> <lora:gone:1> <lora:detail:0>")
    text = format_infotext(request, lora_folders=[folder])
    short = lora_hash(folder / "detail.safetensors")[:12]
    expected = f'Lora hashes: "detail: {short}, style: {lora_hash(folder / "sub" / "style.safetensors")[:12]}"'
    assert expected in text
    assert text.startswith("a fox <lora:detail:0.6> <lora:style:1> <lora:gone:1> <lora:detail:0>\n")  # tags stay
    meta = from_a1111(text)
    assert meta.fields["prompt"] == request.prompt and "Lora hashes" not in meta.extras
    assert "Lora hashes" not in format_infotext(replace(BASE, prompt="no loras"), lora_folders=[folder])


def test_saving_writes_the_engines_hashes_and_searches_no_folder(tmp_path):
    """The engine fills in the hashes of the files it used; formatting never hashes LoRAs again."""
    pytest.importorskip("studio.core.generation.lora_tags")
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Lora").mkdir()
    _write_lora(models / "Lora" / "detail.safetensors", np.arange(8, dtype=np.uint8).tobytes())
    request = replace(BASE, prompt="a fox <lora:detail:1>", model=str(models / "Stable-diffusion" / "m.safetensors"))
    assert "Lora hashes" not in format_infotext(request)
    filled = replace(request, lora_hashes="detail: 0123456789ab", ti_hashes="neg: ba9876543210")
    text = format_infotext(filled)
    assert 'Lora hashes: "detail: 0123456789ab"' in text and 'TI hashes: "neg: ba9876543210"' in text


def test_ti_hashes_name_the_embeddings_the_prompts_use(tmp_path):
    from studio.core.models.model_hash import file_sha256

    folder = tmp_path / "embeddings"
    (folder / "neg").mkdir(parents=True)
    _write_lora(folder / "fancy-style.safetensors", b"\x03" * 8)
    _write_lora(folder / "neg" / "badhands.safetensors", b"\x04" * 8)
    _write_lora(folder / "unused.safetensors", b"\x05" * 8)
    request = replace(BASE, prompt="a fox, (fancy-style:1.2), <lora:unused:1>", negative_prompt="BadHands, blurry")
    text = format_infotext(request, lora_folders=[], embedding_folders=[folder])
    short = {name: file_sha256(path)[:12] for name, path in
             (("fancy-style", folder / "fancy-style.safetensors"), ("badhands", folder / "neg" / "badhands.safetensors"))}
    assert f'TI hashes: "fancy-style: {short["fancy-style"]}, badhands: {short["badhands"]}"' in text  # prompt, then negative
    assert "unused" not in text.split("\n")[-1]  # a LoRA tag's name is not a word of the prompt
    assert "TI hashes" not in format_infotext(replace(BASE, prompt="fancy-styles everywhere"), embedding_folders=[folder])
    assert "TI hashes" not in from_a1111(text).extras


def test_a_damaged_value_leaves_its_field_as_it_was():
    """A1111's paste leaves a field whose value does not convert unchanged; an absent key still means off."""
    text = ("p\r\nNegative prompt: n\r\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, "
            "Clip skip: 3\tVersion: v1.10, Variation seed: 4, Variation seed strength: lots, Seed resize from: 64xbig")
    meta = parse_chunks({"parameters": text})
    assert (meta.fields["prompt"], meta.fields["negative_prompt"]) == ("p", "n")  # no "\r" left
    before = Settings(clip_skip=2, variation=True, variation_strength=0.4, seed_resize_width=128, seed_resize_height=64)
    restored = apply_fields(before, meta.fields)
    assert (restored.clip_skip, restored.variation_strength) == (2, 0.4)
    assert (restored.seed_resize_width, restored.seed_resize_height) == (128, 64)
    assert restored.variation_seed == 4 and restored.steps == 20
    assert meta.extras["Clip skip"] == "3\tVersion: v1.10"


def test_infotext_lines_are_stripped_as_a1111_strips_them():
    from studio.core.formats.infotext import parse_infotext

    info = parse_infotext("a cat\r\n  on a mat  \r\nNegative prompt: dog\r\n  blur\r\nSteps: 20, Seed: 1, Size: 64x64\r\n")
    assert (info.prompt, info.negative_prompt, info.params["Size"]) == ("a cat\non a mat", "dog\nblur", "64x64")
