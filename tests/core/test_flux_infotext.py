"""Forge's metadata keys for Flux images, written and read: `Distilled CFG Scale` (with
`CFG scale: 1`), `Schedule type`, `Module 1/2/3` naming the VAE and text encoder files, and
`Model hash` of the transformer file, which finds the model in the library."""

import hashlib

from PIL import Image, PngImagePlugin

from studio import __version__
from studio.core.formats.dropped_image import read_dropped_image
from studio.core.formats.infotext import forge_sampler, format_infotext, parse_infotext
from studio.core.formats.metadata import apply_fields, from_a1111
from studio.core.generation.request import GenerationRequest
from studio.core.generation.settings import Settings
from studio.core.models import model_library
from studio.core.models.family import PanelFacts
from studio.core.models.model_hash import file_sha256
from studio.core.models.model_library import LibraryModel
from studio.core.storage.outputs import PARAMETERS_KEY

DEV = PanelFacts(guidance_label="Distilled CFG", negative_prompt=False, clip_skip=False, token_limit=512,
                 token_counter="t5")
SCHNELL = PanelFacts(guidance_label="Distilled CFG", guidance=False, negative_prompt=False, clip_skip=False,
                     token_limit=256, token_counter="t5")
# As Forge writes a Flux [dev] image made from split parts (a GGUF transformer, ComfyUI's
# text encoders and the BFL VAE); its Module keys are in the order the artist picked them.
FORGE_FLUX = (
    "a lighthouse on a cliff at dusk, oil painting <lora:impasto:0.8>\n"
    "Steps: 24, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 2.8, Seed: 1234567, "
    "Size: 896x1152, Model hash: 0123456789, Model: flux1-dev-Q8_0, Lora hashes: \"impasto: 0a1b2c3d4e5f\", "
    "Version: f2.0.1v1.10.1-previous-313-g8a042934, Diffusion in Low Bits: Automatic, "
    "Module 1: ae, Module 3: t5xxl_fp8_e4m3fn, Module 2: clip_l"
)


def _flux_request(**changes):
    values = dict(prompt="a lighthouse", steps=24, sampler="Euler", guidance=2.8, seed=1234567, width=896,
                  height=1152, model="/models/unet/flux1-dev-Q8_0.gguf", model_hash="0123456789",
                  modules="ae, clip_l, t5xxl_fp16")
    values.update(changes)
    return GenerationRequest(**values)


def test_flux_dev_is_written_as_forge_writes_it():
    text = format_infotext(_flux_request(), facts=DEV)
    assert text == (
        "a lighthouse\n"
        "Steps: 24, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 2.8, Seed: 1234567, "
        f"Size: 896x1152, Model hash: 0123456789, Model: flux1-dev-Q8_0, Version: DiffusionStudio {__version__}, "
        "Module 1: ae, Module 2: clip_l, Module 3: t5xxl_fp16"
    )


def test_flux_schnell_says_no_guidance_and_karras_is_a_schedule():
    text = format_infotext(_flux_request(guidance=1.0, sampler="DPM++ 2M Karras", modules=""), facts=SCHNELL)
    params = parse_infotext(text).params
    assert (params["Sampler"], params["Schedule type"], params["CFG scale"]) == ("DPM++ 2M", "Karras", "1")
    assert "Distilled CFG Scale" not in params and not any(key.startswith("Module") for key in params)
    assert forge_sampler("Euler a") == ("Euler a", "Simple")


def test_sd_images_are_written_as_before():
    request = GenerationRequest("a cat", negative_prompt="blurry", sampler="DPM++ 2M Karras", guidance=7.0,
                                model="/models/sd15.safetensors", modules="")
    text = format_infotext(request, facts=PanelFacts())
    assert "Sampler: DPM++ 2M Karras, CFG scale: 7, Seed" in text and "Schedule type" not in text
    assert "Negative prompt: blurry" in text
    assert format_infotext(request) == text  # a model that cannot be read: the SD keys


def test_a_forge_flux_image_restores_its_settings():
    metadata = from_a1111(FORGE_FLUX)
    assert metadata.fields["guidance"] == 2.8  # the distilled guidance, not CFG scale 1
    assert metadata.fields["sampler"] == "Euler" and metadata.fields["steps"] == 24
    assert (metadata.fields["width"], metadata.fields["height"]) == (896, 1152)
    assert metadata.modules == ("ae", "clip_l", "t5xxl_fp8_e4m3fn")  # Module 1, 2, 3 whatever the key order
    # Everything Forge wrote for Flux is understood; only what the studio has no use for is left over.
    assert set(metadata.extras) == {"Model", "Model hash", "Version", "Diffusion in Low Bits"}
    settings = apply_fields(Settings(), metadata.fields)
    assert (settings.guidance, settings.sampler, settings.seed) == (2.8, "Euler", 1234567)


def test_forge_two_pass_cfg_on_flux_is_said_not_used():
    metadata = from_a1111(FORGE_FLUX.replace("CFG scale: 1,", "CFG scale: 4,"))
    assert metadata.fields["guidance"] == 2.8
    assert metadata.extras["CFG scale"] == "4"


def test_written_flux_text_reads_back():
    for sampler in ("Euler", "DPM++ 2M Karras", "Euler a"):
        metadata = from_a1111(format_infotext(_flux_request(sampler=sampler), facts=DEV))
        assert (metadata.fields["sampler"], metadata.fields["guidance"]) == (sampler, 2.8)
        assert "Schedule type" not in metadata.extras and "CFG scale" not in metadata.extras
        assert metadata.modules == ("ae", "clip_l", "t5xxl_fp16")


def test_dropped_forge_flux_image_finds_its_transformer_by_hash(tmp_path, monkeypatch):
    transformer = tmp_path / "unet" / "my-flux-finetune.safetensors"  # renamed: only the hash matches
    transformer.parent.mkdir()
    transformer.write_bytes(b"flux transformer weights")
    assert file_sha256(transformer) == hashlib.sha256(b"flux transformer weights").hexdigest()  # cached now
    short = file_sha256(transformer)[:10]
    library = [LibraryModel(str(transformer), transformer.stem, "Flux.1 [dev]", 24, True)]
    monkeypatch.setattr(model_library, "scan_models", lambda folders: (library, []))
    image = tmp_path / "forge.png"
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, FORGE_FLUX.replace("Model hash: 0123456789", f"Model hash: {short}"))
    Image.new("RGB", (8, 8)).save(image, pnginfo=info)
    dropped = read_dropped_image(str(image), [str(tmp_path)])
    assert dropped.model_path == str(transformer)
    assert dropped.metadata.fields["guidance"] == 2.8
