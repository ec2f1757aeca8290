import io
import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from studio.core.formats.infotext import format_infotext
from studio.core.formats.metadata import (
    EXIF_IFD,
    USER_COMMENT,
    apply_fields,
    decode_user_comment,
    encode_user_comment,
    export_image,
    parse_chunks,
    read_metadata,
)
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.generation.settings import Settings
from studio.core.storage.outputs import png_bytes

A1111_TEXT = (
    "masterpiece, a (red:1.2) fox in snow, <lora:add_detail:0.6>\n"
    "with a second line\n"
    "Negative prompt: lowres, bad anatomy\n"
    "blurry\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, "
    'Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)

COMFY_GRAPH = {
    "3": {"inputs": {"seed": 8566257, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                     "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                     "latent_image": ["5", 0]}, "class_type": "KSampler"},
    "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "5": {"inputs": {"width": 640, "height": 448, "batch_size": 1}, "class_type": "EmptyLatentImage"},
    "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, purple galaxy bottle",
                     "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"},
}

INVOKE_METADATA = {
    "generation_mode": "txt2img", "positive_prompt": "a lighthouse at dusk, oil painting",
    "negative_prompt": "people", "width": 1024, "height": 768, "seed": 2987654321, "rand_device": "cpu",
    "cfg_scale": 7.5, "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 0,
    "model": {"key": "5a7c", "hash": "blake3:00ff", "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
    "app_version": "4.2.4",
}

FOOOCUS_PARAMETERS = {
    "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion.safetensors",
    "full_negative_prompt": ["unrealistic", "saturated"], "full_prompt": ["a castle, cinematic"],
    "guidance_scale": 4.0, "negative_prompt": "", "performance": "Speed", "prompt": "a castle",
    "prompt_expansion": "a castle, cinematic", "refiner_model": "None", "refiner_switch": 0.5,
    "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": "1234567890",
    "sharpness": 2.0, "steps": 30, "styles": "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']",
    "version": "Fooocus v2.5.5",
}


def _png(path, chunks, size=(16, 16)):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", size, (40, 90, 200)).save(path, pnginfo=info)
    return path


def test_studio_png_round_trips_to_the_exact_request(tmp_path):
    request = GenerationRequest(prompt="a cat, 日本語 prompt\nsecond line", negative_prompt="dog", steps=23,
                                guidance=6.25, seed=4_000_000_000, width=640, height=384, sampler="Euler a",
                                model="/models/sd15", mode=Mode.IMG2IMG, strength=0.6, init_image="/in.png")
    path = tmp_path / "out.png"
    path.write_bytes(png_bytes(Image.new("RGB", (8, 8)), request))
    meta = read_metadata(path)
    assert meta.ok and meta.source == "studio"
    assert meta.request == request
    assert meta.fields["seed"] == 4_000_000_000 and meta.fields["strength"] == 0.6


def test_a1111_parameters(tmp_path):
    meta = read_metadata(_png(tmp_path / "a.png", {"parameters": A1111_TEXT}))
    assert meta.ok and meta.source == "a1111"
    f = meta.fields
    assert f["prompt"] == "masterpiece, a (red:1.2) fox in snow, <lora:add_detail:0.6>\nwith a second line"
    assert f["negative_prompt"] == "lowres, bad anatomy\nblurry"
    assert (f["steps"], f["guidance"], f["seed"]) == (28, 6.5, 3141592653)
    assert f["sampler"] == "DPM++ 2M Karras"  # Sampler + "Schedule type: Karras"
    assert (f["width"], f["height"]) == (512, 768)
    # With hires fix, "Denoising strength" is the hires pass's (A1111's txt2img), not img2img's.
    assert (f["hires_fix"], f["hires_scale"], f["hires_upscaler"], f["hires_denoise"]) == (True, 2.0, "Latent", 0.45)
    assert "strength" not in f and "Hires upscale" not in meta.extras
    assert "Lora hashes" not in meta.extras  # the LoRAs are in the prompt; the hashes only name files
    assert "Schedule type" not in meta.extras and "Steps" not in meta.extras


def test_a1111_unknown_sampler_is_kept_as_extra():
    meta = parse_chunks({"parameters": "p\nSteps: 20, Sampler: DPM++ 3M SDE, CFG scale: 7, Seed: 1, Size: 512x512"})
    assert "sampler" not in meta.fields and meta.extras["Sampler"] == "DPM++ 3M SDE"
    assert meta.fields["steps"] == 20


def test_our_own_infotext_reads_back_as_a1111():
    request = GenerationRequest(prompt="x, y: z", negative_prompt="n", seed=5, width=64, height=64, sampler="Heun")
    meta = parse_chunks({"parameters": format_infotext(request)})
    assert meta.source == "a1111"
    assert {k: meta.fields[k] for k in ("prompt", "negative_prompt", "seed", "width", "sampler")} == {
        "prompt": "x, y: z", "negative_prompt": "n", "seed": 5, "width": 64, "sampler": "Heun"}


def test_comfyui_prompt_graph(tmp_path):
    chunks = {"prompt": json.dumps(COMFY_GRAPH), "workflow": json.dumps({"nodes": []})}
    meta = read_metadata(_png(tmp_path / "c.png", chunks))
    assert meta.ok and meta.source == "comfyui"
    assert meta.fields == {
        "prompt": "beautiful scenery nature glass bottle landscape, purple galaxy bottle",
        "negative_prompt": "text, watermark", "seed": 8566257, "steps": 25, "guidance": 7.5,
        "sampler": "DPM++ 2M Karras", "width": 640, "height": 448,
    }
    assert meta.extras["Model"] == "v1-5-pruned-emaonly.safetensors"


def test_comfyui_follows_pass_through_nodes_and_keeps_huge_seed_as_extra():
    graph = json.loads(json.dumps(COMFY_GRAPH))
    graph["3"]["inputs"]["positive"] = ["10", 0]
    graph["3"]["inputs"]["seed"] = 156680208700286  # ComfyUI seeds go up to 2^64
    graph["3"]["inputs"]["sampler_name"] = "euler_ancestral"
    graph["3"]["inputs"]["scheduler"] = "normal"
    graph["10"] = {"inputs": {"conditioning": ["6", 0], "control_net": ["11", 0], "image": ["12", 0], "strength": 1},
                   "class_type": "ControlNetApply"}
    meta = parse_chunks({"prompt": json.dumps(graph)})
    assert meta.fields["prompt"].startswith("beautiful scenery")
    assert meta.fields["sampler"] == "Euler a"
    assert "seed" not in meta.fields and meta.extras["seed"] == 156680208700286


def test_comfyui_without_ksampler_is_a_clear_error():
    meta = parse_chunks({"prompt": json.dumps({"1": {"class_type": "LoadImage", "inputs": {}}})})
    assert not meta.ok and "KSampler" in meta.error


def test_invokeai_metadata(tmp_path):
    chunks = {"invokeai_metadata": json.dumps(INVOKE_METADATA), "invokeai_graph": "{}"}
    meta = read_metadata(_png(tmp_path / "i.png", chunks))
    assert meta.ok and meta.source == "invokeai"
    assert meta.fields == {"prompt": "a lighthouse at dusk, oil painting", "negative_prompt": "people",
                           "seed": 2987654321, "steps": 30, "guidance": 7.5, "sampler": "DPM++ 2M Karras",
                           "width": 1024, "height": 768}
    assert meta.extras["model"]["name"] == "Juggernaut XL v9"


def test_fooocus_json_parameters(tmp_path):
    chunks = {"parameters": json.dumps(FOOOCUS_PARAMETERS, sort_keys=True), "fooocus_scheme": "fooocus"}
    meta = read_metadata(_png(tmp_path / "f.png", chunks))
    assert meta.ok and meta.source == "fooocus"
    assert meta.fields == {"prompt": "a castle", "negative_prompt": "", "steps": 30, "guidance": 4.0,
                           "seed": 1234567890, "sampler": "DPM++ 2M SDE Karras", "width": 1152, "height": 896}
    assert meta.extras["styles"].startswith("['Fooocus V2'") and meta.extras["version"] == "Fooocus v2.5.5"


def test_fooocus_a1111_scheme_is_a1111_text():
    meta = parse_chunks({"parameters": A1111_TEXT, "fooocus_scheme": "a1111"})
    assert meta.source == "fooocus" and meta.fields["steps"] == 28


def test_fooocus_jpeg_exif_user_comment(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(json.dumps(FOOOCUS_PARAMETERS))
    exif[0x927C] = "fooocus"
    path = tmp_path / "f.jpg"
    Image.new("RGB", (16, 16)).save(path, exif=exif.tobytes())
    meta = read_metadata(path)
    assert meta.source == "fooocus" and meta.fields["seed"] == 1234567890


def test_user_comment_decodes_both_byte_orders():
    text = "a cat 日本, Steps: 20"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be")) == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le")) == text
    assert decode_user_comment(b"ASCII\0\0\0hello") == "hello"
    assert decode_user_comment(b"x") is None


def test_drawthings_user_comment_json():
    data = {"c": "a robot", "uc": "blurry", "steps": 12, "scale": 5, "seed": 42, "size": "768x512", "sampler": "Euler a"}
    meta = parse_chunks({"parameters": json.dumps(data)})
    assert meta.source == "drawthings"
    assert meta.fields == {"prompt": "a robot", "negative_prompt": "blurry", "steps": 12, "guidance": 5.0,
                           "seed": 42, "sampler": "Euler a", "width": 768, "height": 512}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp"])
def test_export_keeps_the_request_and_the_a1111_text(tmp_path, suffix):
    request = GenerationRequest(prompt="ünïcödé 猫 prompt", negative_prompt="neg, with: colon", seed=77, width=64, height=64)
    src = tmp_path / "src.png"
    src.write_bytes(png_bytes(Image.new("RGB", (64, 64), (200, 10, 10)), request))
    dest = export_image(src, tmp_path / f"out{suffix}")
    assert dest.is_file()
    meta = read_metadata(dest)
    assert meta.source == "studio" and meta.request == request
    with Image.open(dest) as image:
        assert image.size == (64, 64)
        if suffix != ".png":
            comment = decode_user_comment(image.getexif().get_ifd(EXIF_IFD)[USER_COMMENT])
            assert comment == format_infotext(request)
        else:
            assert image.text["parameters"] == format_infotext(request)


def test_export_of_an_a1111_png_to_jpeg_keeps_parameters(tmp_path):
    src = _png(tmp_path / "a.png", {"parameters": A1111_TEXT})
    meta = read_metadata(export_image(src, tmp_path / "a.jpg"))
    assert meta.source == "a1111" and meta.fields["sampler"] == "DPM++ 2M Karras"


def test_export_refuses_unknown_suffix(tmp_path):
    src = _png(tmp_path / "a.png", {})
    with pytest.raises(ValueError, match=".gif"):
        export_image(src, tmp_path / "a.gif")


def test_unreadable_files_give_clear_errors(tmp_path):
    assert "does not exist" in read_metadata(tmp_path / "missing.png").error
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert "junk.png" in read_metadata(junk).error
    plain = _png(tmp_path / "plain.png", {})
    assert "no generation settings" in read_metadata(plain).error


def test_damaged_studio_request_falls_back_to_parameters():
    meta = parse_chunks({"studio_request": '{"steps": "x"}', "parameters": A1111_TEXT})
    assert meta.ok and meta.source == "a1111"


def test_apply_fields_restores_groups():
    meta = parse_chunks({"parameters": A1111_TEXT})
    base = Settings(prompt="old", seed=1, random_seed=True, width=64, batch_count=4)
    everything = apply_fields(base, meta.fields)
    assert everything.prompt.startswith("masterpiece") and everything.seed == 3141592653
    assert everything.random_seed is False and everything.sampler == "DPM++ 2M Karras"
    assert everything.batch_count == 4  # not metadata: untouched
    seed_only = apply_fields(base, meta.fields, "seed")
    assert (seed_only.seed, seed_only.prompt, seed_only.width, seed_only.random_seed) == (3141592653, "old", 64, False)
    prompt_only = apply_fields(base, meta.fields, "prompt")
    assert prompt_only.negative_prompt == "lowres, bad anatomy\nblurry" and prompt_only.seed == 1
    assert apply_fields(base, {"steps": "many", "guidance": 5}).guidance == 5.0  # wrong types are skipped
    assert apply_fields(base, {"steps": "many"}).steps == base.steps


# -- property-based: no input makes a parser raise --------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
# Structures that look like the real thing, so the parsers' inner paths get exercised too.
graph_like = st.dictionaries(
    st.sampled_from(["1", "2", "3", "4", "5"]),
    st.fixed_dictionaries({"class_type": st.sampled_from(["KSampler", "KSamplerAdvanced", "CLIPTextEncode",
                                                           "EmptyLatentImage", "X"]) | json_values,
                           "inputs": st.dictionaries(
                               st.sampled_from(["seed", "steps", "cfg", "positive", "negative", "latent_image",
                                                "text", "conditioning", "width", "height", "sampler_name",
                                                "scheduler", "denoise", "ckpt_name"]),
                               json_values | st.lists(st.sampled_from(["1", "2", "3", "9"]), min_size=1, max_size=2),
                               max_size=8) | json_values}),
    max_size=5,
)
param_line = st.lists(st.tuples(st.sampled_from(["Steps", "Sampler", "CFG scale", "Seed", "Size", "Schedule type",
                                                  "Denoising strength", "Hires upscale"]),
                                st.text(max_size=12)), min_size=0, max_size=8).map(
    lambda kv: "prompt\nNegative prompt: n\n" + ", ".join(f"{k}: {v}" for k, v in kv))
chunk_text = st.text(max_size=200) | json_values.map(json.dumps) | graph_like.map(json.dumps) | param_line
chunks = st.dictionaries(
    st.sampled_from(["parameters", "prompt", "workflow", "invokeai_metadata", "studio_request", "fooocus_scheme"])
    | st.text(max_size=10),
    chunk_text | st.binary(max_size=20) | json_values,
    max_size=4,
)


@hsettings(max_examples=300, deadline=None)
@given(chunks=chunks)
def test_parse_chunks_never_raises_and_explains_failures(chunks):
    meta = parse_chunks(chunks)
    if meta.ok:
        assert meta.source
        applied = apply_fields(Settings(), meta.fields)  # what the parsers return is usable
        assert isinstance(applied, Settings)
    else:
        assert isinstance(meta.error, str) and len(meta.error) > 10 and meta.fields == {}


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF"]))
def test_read_metadata_survives_any_file(tmp_path, data, prefix):
    path = tmp_path / "x.png"
    path.write_bytes(prefix + data)
    meta = read_metadata(path)
    assert meta.ok or (isinstance(meta.error, str) and meta.error)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=100))
def test_any_text_chunk_round_trips_through_a_real_png(tmp_path, text):
    meta = read_metadata(_png(tmp_path / "t.png", {"parameters": text, "prompt": text}))
    assert meta.ok or meta.error


def test_text_chunk_after_the_pixel_data_is_still_found(tmp_path):
    # Some writers put tEXt after IDAT; Pillow only sees those once the image is decoded.
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    iend = data.rfind(b"IEND") - 4
    body = b"parameters\0a cat\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 8x8"
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    path = tmp_path / "late.png"
    path.write_bytes(data[:iend] + chunk + data[iend:])
    meta = read_metadata(path)
    assert meta.source == "a1111" and meta.fields["seed"] == 3 and meta.fields["prompt"] == "a cat"


# -- hostile metadata (issue 9, items 3, 4 and 12) ---------------------------------------------
@pytest.mark.parametrize("bad", ['{"prompt": "x", "steps": Infinity}', '{"prompt": "x", "guidance": 1e400}',
                                 '{"prompt": "x", "seed": -Infinity}', '{"prompt": "x", "width": NaN}'])
def test_non_finite_studio_request_falls_back_to_the_parameters_beside_it(bad):
    meta = parse_chunks({"studio_request": bad, "parameters": A1111_TEXT})
    assert meta.ok and meta.source == "a1111" and meta.fields["seed"] == 3141592653


def test_a_parser_that_raises_does_not_hide_the_next_chunk(monkeypatch):
    from studio.core.formats import metadata

    def explode(text):
        raise OverflowError("boom")

    monkeypatch.setattr(metadata, "from_studio", explode)
    meta = parse_chunks({"studio_request": "{}", "parameters": A1111_TEXT})
    assert meta.ok and meta.source == "a1111"


def test_dropped_studio_request_with_huge_numbers_is_clamped_into_range():
    data = GenerationRequest("x").to_dict() | {"steps": 2**40, "seed": 2**70, "width": 10**12, "batch_count": 10**9,
                                                 "mask_blur": -7, "inpaint_padding": 2**31}
    meta = parse_chunks({"studio_request": json.dumps(data)})
    assert meta.ok and meta.source == "studio"
    r = meta.request
    assert (r.steps, r.seed, r.width, r.batch_count, r.mask_blur, r.inpaint_padding) == (150, 2**32 - 1, 4096, 100, 0, 256)
    assert (meta.fields["steps"], meta.fields["seed"], meta.fields["width"]) == (150, 2**32 - 1, 4096)
    assert apply_fields(Settings(), meta.fields).steps == 150


def test_foreign_numbers_beyond_the_ranges_are_clamped():
    text = "a cat\nSteps: 99999999999, Sampler: Euler, CFG scale: 900, Seed: 5, Size: 100000x8"
    meta = parse_chunks({"parameters": text})
    assert (meta.fields["steps"], meta.fields["guidance"]) == (150, 50.0)
    assert (meta.fields["width"], meta.fields["height"]) == (4096, 64)
    comfy = json.loads(json.dumps(COMFY_GRAPH))
    comfy["3"]["inputs"]["steps"] = 2**62
    assert parse_chunks({"prompt": json.dumps(comfy)}).fields["steps"] == 150


def _raw_png(path, extra_chunks, after_idat=()):
    """A real 8x8 PNG with raw chunks (type, data) inserted before IDAT and after it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    idat, iend = png.find(b"IDAT") - 4, png.rfind(b"IEND") - 4
    before = b"".join(chunk(k, d) for k, d in extra_chunks)
    after = b"".join(chunk(k, d) for k, d in after_idat)
    path.write_bytes(png[:idat] + before + png[idat:iend] + after + png[iend:])
    return path


def test_oversize_text_chunks_are_skipped_unread_and_the_rest_is_read(tmp_path):
    import time
    import zlib

    a1111 = b"parameters\0a cat\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 8x8"
    huge = b"prompt\0" + b"{" * 20_000_000  # 20 MB tEXt: over the cap, never read into memory
    bomb = b"workflow\0\0" + zlib.compress(b" " * 50_000_000)  # 50 MB once inflated
    path = _raw_png(tmp_path / "big.png", [(b"tEXt", huge), (b"zTXt", bomb)], [(b"tEXt", a1111)])
    start = time.perf_counter()
    meta = read_metadata(path)
    assert time.perf_counter() - start < 0.5
    assert meta.ok and meta.source == "a1111" and meta.fields["seed"] == 3


def test_chunk_walker_decodes_as_pillow_does(tmp_path):
    from studio.core.formats.metadata import png_text_chunks

    info = PngImagePlugin.PngInfo()
    info.add_text("latin", "café")  # tEXt
    info.add_text("zipped", "x" * 5000, zip=True)  # zTXt
    info.add_itxt("unicode", "雪 — snow")  # iTXt
    info.add_itxt("unicode-zipped", "雪" * 3000, zip=True)  # compressed iTXt
    info.add_text("latin", "later wins")
    path = tmp_path / "t.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with Image.open(path) as image:
        image.load()
        expected = dict(image.text)
    assert png_text_chunks(path) == expected


def test_100kb_adversarial_parameters_chunk_reads_in_milliseconds(tmp_path):
    import time

    path = _png(tmp_path / "evil.png", {"parameters": "a cat\n" + "Steps 1 " * 12_800})
    start = time.perf_counter()
    meta = read_metadata(path)
    assert time.perf_counter() - start < 0.5  # 80 s with A1111's regex
    assert meta.ok and meta.fields["prompt"].startswith("a cat")


def test_fifo_is_refused_not_waited_on(tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "x.png")
    assert "not a regular file" in read_metadata(tmp_path / "x.png").error
