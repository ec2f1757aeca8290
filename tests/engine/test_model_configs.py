"""The shipped per-family diffusers configs build the official architectures.

Every UNet, VAE and text encoder is instantiated on the meta device (no memory, no weights) and
must have exactly the parameter count of the official model; the values a count cannot see
(activation, attention layout, prediction type, latent scale) are checked by name.
"""

import json
import socket
from pathlib import Path

import diffusers
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.core.models.family import Family
from studio.engine.families import ADAPTERS, config_dir

# Official parameter counts (UNet, VAE, text_encoder, text_encoder_2).
SD15_UNET, SD2_UNET, SDXL_UNET = 859_520_964, 865_910_724, 2_567_463_684
SD_VAE = 83_653_863
CLIP_L, OPENCLIP_H_23, OPENCLIP_BIGG_PROJ = 123_060_480, 340_387_840, 694_659_840
# An inpainting UNet's conv_in reads 9 channels instead of 4: 5 * 320 * 3 * 3 more weights.
INPAINT_EXTRA = 5 * 320 * 3 * 3

EXPECTED = {
    "sd15": (SD15_UNET, SD_VAE, CLIP_L, None),
    "sd15-inpaint": (SD15_UNET + INPAINT_EXTRA, SD_VAE, CLIP_L, None),
    "sd2-v": (SD2_UNET, SD_VAE, OPENCLIP_H_23, None),
    "sd2-base": (SD2_UNET, SD_VAE, OPENCLIP_H_23, None),
    "sd2-inpaint": (SD2_UNET + INPAINT_EXTRA, SD_VAE, OPENCLIP_H_23, None),
    "sdxl": (SDXL_UNET, SD_VAE, CLIP_L, OPENCLIP_BIGG_PROJ),
    "sdxl-inpaint": (SDXL_UNET + INPAINT_EXTRA, SD_VAE, CLIP_L, OPENCLIP_BIGG_PROJ),
}
# Facts of the official models: (diffusers class, native side, prediction, UNet input channels).
OFFICIAL = {
    "sd15": ("StableDiffusionPipeline", 512, "epsilon", 4),
    "sd15-inpaint": ("StableDiffusionInpaintPipeline", 512, "epsilon", 9),
    "sd2-v": ("StableDiffusionPipeline", 768, "v_prediction", 4),
    "sd2-base": ("StableDiffusionPipeline", 512, "epsilon", 4),
    "sd2-inpaint": ("StableDiffusionInpaintPipeline", 512, "epsilon", 9),
    "sdxl": ("StableDiffusionXLPipeline", 1024, "epsilon", 4),
    "sdxl-inpaint": ("StableDiffusionXLInpaintPipeline", 1024, "epsilon", 9),
}
# Who ships each folder. Families that build their pipelines themselves (Flux) check their
# configs in their own tests (tests/engine/test_flux_configs.py).
ADAPTER_OF = {name: adapter for adapter in ADAPTERS.values() if not adapter.loads_itself for name in adapter.configs}
FAMILIES = sorted(ADAPTER_OF)


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_family_is_checked():
    assert set(EXPECTED) == set(OFFICIAL) == set(ADAPTER_OF)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_adapter_loads_each_of_its_folders_with_its_official_class(family):
    """The model an adapter sends to a folder gets the folder's pipeline class and native size."""
    from studio.core.models.family import ModelInfo

    adapter = ADAPTER_OF[family]
    class_name, native, prediction, channels = OFFICIAL[family]
    info = ModelInfo(Path(f"{family}.safetensors"), True, adapter.family, inpaint=channels == 9, prediction=prediction)
    assert adapter.config_name(info) == family
    assert adapter.load_class(info).__name__ == class_name
    assert info.native_size == native


@pytest.mark.parametrize("family", FAMILIES)
def test_components_have_the_official_parameter_counts(family):
    folder = config_dir(family)
    unet_n, vae_n, te_n, te2_n = EXPECTED[family]
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        text_encoder_2 = None
        if te2_n is not None:
            text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
    assert next(unet.parameters()).device.type == "meta"  # nothing was allocated
    assert n_params(unet) == unet_n
    assert n_params(vae) == vae_n
    assert n_params(text_encoder) == te_n
    if te2_n is None:
        assert not (folder / "text_encoder_2").exists()
    else:
        assert n_params(text_encoder_2) == te2_n


@pytest.mark.parametrize("family", FAMILIES)
def test_values_a_parameter_count_cannot_see(family):
    folder = config_dir(family)
    _, native, _, channels = OFFICIAL[family]
    unet, vae = read(folder / "unet" / "config.json"), read(folder / "vae" / "config.json")
    te = read(folder / "text_encoder" / "config.json")
    assert unet["in_channels"] == channels
    assert unet["sample_size"] * 8 == native  # default size = native size
    if family.startswith("sd15"):
        assert unet["attention_head_dim"] == 8 and not unet.get("use_linear_projection", False)
        assert te["hidden_act"] == "quick_gelu"
    elif family.startswith("sd2"):
        assert unet["attention_head_dim"] == [5, 10, 20, 20] and unet["use_linear_projection"] is True
        assert unet["cross_attention_dim"] == 1024 and te["hidden_act"] == "gelu" and te["num_hidden_layers"] == 23
        # The 768 v-model overflows fp16 attention without upcasting (as in the official config).
        assert unet.get("upcast_attention", False) is (family == "sd2-v")
    else:
        assert unet["attention_head_dim"] == [5, 10, 20] and unet["use_linear_projection"] is True
        assert unet["transformer_layers_per_block"] == [1, 2, 10] and unet["cross_attention_dim"] == 2048
        assert unet["addition_embed_type"] == "text_time" and unet["addition_time_embed_dim"] == 256
        assert unet["projection_class_embeddings_input_dim"] == 2816
        assert te["hidden_act"] == "quick_gelu"
        assert read(folder / "text_encoder_2" / "config.json")["hidden_act"] == "gelu"
    assert vae["scaling_factor"] == ADAPTER_OF[family].latent.scaling_factor  # the adapter's latent format
    if ADAPTER_OF[family].family is Family.SDXL:
        assert vae["scaling_factor"] == 0.13025 and vae["force_upcast"] is True  # SDXL's VAE overflows in fp16
    else:
        assert vae["scaling_factor"] == 0.18215


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_folder_loads_and_its_scheduler_builds(family):
    folder = config_dir(family)
    class_name, _, prediction, _ = OFFICIAL[family]
    pipeline_class = getattr(diffusers, class_name)
    index = pipeline_class.load_config(folder)
    assert index["_class_name"] == class_name
    components = {k: v for k, v in index.items() if isinstance(v, list) and len(v) == 2}
    for name, (library, class_name) in components.items():
        if library is None:
            assert name in ("safety_checker", "feature_extractor") and class_name is None
            continue
        assert (folder / name).is_dir(), name
    if "safety_checker" in components:
        assert index["requires_safety_checker"] is False
    scheduler_class = getattr(diffusers, components["scheduler"][1])
    scheduler = scheduler_class.from_config(scheduler_class.load_config(folder / "scheduler"))
    assert type(scheduler) is scheduler_class
    assert scheduler.config.prediction_type == prediction
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.num_train_timesteps == 1000


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_folders_hold_only_the_special_tokens(family):
    folder, pads = config_dir(family), ADAPTER_OF[family].tokenizer_pads
    names = ("tokenizer", "tokenizer_2")[: len(pads)]
    for name, pad in zip(names, pads, strict=True):
        files = sorted(p.name for p in (folder / name).iterdir())
        assert files == ["special_tokens_map.json", "tokenizer_config.json"]  # the vocab is shipped once
        assert read(folder / name / "special_tokens_map.json")["pad_token"] == pad
        config = read(folder / name / "tokenizer_config.json")
        assert config["pad_token"] == pad and config["model_max_length"] == 77
    assert not (folder / "tokenizer_2").exists() or len(pads) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_from_single_file_opens_offline_with_the_shipped_folder(family, tmp_path, monkeypatch):
    """The way the loader will call diffusers, sockets blocked. The weight-bearing components are
    passed in (built on the meta device), so diffusers reads only our folder: the layout, the
    scheduler config and the null safety checker."""
    from safetensors.torch import save_file

    def refuse(*args, **kwargs):
        raise AssertionError("from_single_file tried to reach the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    adapter, folder = ADAPTER_OF[family], config_dir(family)
    class_name, native, prediction, _ = OFFICIAL[family]
    checkpoint = tmp_path / "model.safetensors"
    save_file({"unused": torch.zeros(1)}, str(checkpoint))
    with torch.device("meta"):
        parts = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
        }
        if (folder / "text_encoder_2").is_dir():
            config_2 = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            parts["text_encoder_2"] = CLIPTextModelWithProjection(config_2)
    parts.update(adapter.tokenizers())  # as the loader hands them over
    pipeline_class = getattr(diffusers, class_name)
    pipe = pipeline_class.from_single_file(str(checkpoint), config=str(folder), local_files_only=True, **parts)
    assert type(pipe) is pipeline_class
    assert pipe.scheduler.config.prediction_type == prediction
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == native
    if hasattr(pipe, "safety_checker"):
        assert pipe.safety_checker is None and pipe.config.requires_safety_checker is False


def test_no_version_bookkeeping_in_the_shipped_configs():
    for path in config_dir("sd15").parent.rglob("*.json"):
        data = read(path)
        assert not {"_diffusers_version", "transformers_version", "_name_or_path", "torch_dtype"} & set(data), path


def test_unknown_family_is_a_key_error():
    with pytest.raises(KeyError):
        config_dir("sd3")
