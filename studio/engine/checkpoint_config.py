"""Component configs for a single-file checkpoint, read off its tensor shapes.

diffusers needs a diffusers-layout config folder to open a single file; it would fetch one from
the Hub. We ship one per family (resources/model-configs/) and adjust the values a checkpoint's
shapes decide (channels, depths, text encoder sizes), as ComfyUI's model detection does. For
the official architectures nothing changes and the shipped folder is used as it is; a variant
(a pruned SDXL, a test's tiny model) gets a patched copy in the studio's cache folder.

What shapes cannot tell (attention head counts, norm groups, activations) follows each family's
convention, which its adapter sets (studio.engine.families: finish_unet_config); CLIP text
encoders have heads of 64 channels. Where each text encoder sits in the file is the adapter's
`checkpoint_text_encoders`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models.family import ModelInfo
from studio.core.models.safetensors_header import SafetensorsHeader
from studio.core.storage.paths import data_home
from studio.engine.families import adapter_for
from studio.engine.families.stable_diffusion import CheckpointTextEncoder, UNetFamily

UNET = "model.diffusion_model."
VAE = "first_stage_model."

# The most any real SD 1.x, SD 2.x or SDXL checkpoint has of each repeated part (SD 1.x/2.x: 12
# input and output blocks of one transformer each; SDXL: 9 blocks, up to 10 transformers each;
# the VAE: 4 levels, 3 decoder blocks each). A header declaring more is damaged or crafted, and
# building it would take minutes (every block is a module diffusers makes and converts); text
# encoders' layer limits are their adapters' (CheckpointTextEncoder.max_layers).
MAX_UNET_BLOCKS = 12  # input_blocks.N and output_blocks.N, each
MAX_TRANSFORMER_DEPTH = 10  # transformer_blocks.N inside one UNet block
MAX_VAE_LEVELS = 4
MAX_VAE_BLOCKS = 3  # resnets per VAE level


def _indices(header: SafetensorsHeader, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for name in header.tensors if (m := regex.match(name))}
    return sorted(found)


def _refuse_beyond(header: SafetensorsHeader, what: str, pattern: str, limit: int) -> None:
    """Refuse a header declaring more of a numbered part (its highest index plus one) than any
    real model has, in one pass over the names: what is built from it stays bounded."""
    found = _indices(header, pattern)
    count = found[-1] + 1 if found else 0
    if count > limit:
        raise StudioError(
            ErrorKind.BAD_MODEL,
            f"{header.path.name} is damaged or not a real model: it declares {count:,} {what}, "
            f"and no Stable Diffusion model has more than {limit}.",
            "Download it again from where it came from.",
        )


def unet_config(header: SafetensorsHeader, adapter: UNetFamily, template: dict) -> dict:
    """The UNet config of an LDM-layout UNet: levels, channels, depths, conditioning sizes."""
    unet = re.escape(UNET)
    _refuse_beyond(header, "UNet input blocks", unet + r"input_blocks\.(\d+)\.", MAX_UNET_BLOCKS)
    _refuse_beyond(header, "UNet output blocks", unet + r"output_blocks\.(\d+)\.", MAX_UNET_BLOCKS)
    _refuse_beyond(header, "transformer blocks in one UNet block",
                   unet + r"(?:input_blocks\.\d+|output_blocks\.\d+|middle_block)\.1\.transformer_blocks\.(\d+)\.",
                   MAX_TRANSFORMER_DEPTH)
    config = dict(template)
    first = header.shape(UNET + "input_blocks.0.0.weight")
    config["in_channels"] = first[1]
    config["out_channels"] = header.shape(UNET + "out.2.weight")[0]
    levels: list[dict] = [{"channels": None, "resnets": 0, "depth": 0}]
    # Each block's transformer depth, in one pass over the names (one pass per block was
    # quadratic in the header's size).
    depth_regex = re.compile(re.escape(UNET) + r"input_blocks\.(\d+)\.1\.transformer_blocks\.(\d+)\.")
    depths_of: dict[int, set[int]] = {}
    for name in header.tensors:
        if m := depth_regex.match(name):
            depths_of.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    for k in _indices(header, re.escape(UNET) + r"input_blocks\.(\d+)\.")[1:]:
        block = f"{UNET}input_blocks.{k}."
        if header.shape(block + "0.op.weight") is not None:  # a downsampler closes the level
            levels.append({"channels": None, "resnets": 0, "depth": 0})
            continue
        level = levels[-1]
        level["resnets"] += 1
        level["channels"] = header.shape(block + "0.out_layers.3.weight")[0]
        depth = len(depths_of.get(k, ()))
        level["depth"] = max(level["depth"], depth)
    channels = [level["channels"] for level in levels]
    config["block_out_channels"] = channels
    config["layers_per_block"] = levels[0]["resnets"]
    attention = [level["depth"] > 0 for level in levels]
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    mid_depth = len(_indices(header, re.escape(UNET) + r"middle_block\.1\.transformer_blocks\.(\d+)\."))
    for name, info in header.tensors.items():
        if name.startswith(UNET) and name.endswith("attn2.to_k.weight"):
            config["cross_attention_dim"] = info.shape[1]
            break
    for name, info in header.tensors.items():
        if name.startswith(UNET) and name.endswith(".proj_in.weight"):
            config["use_linear_projection"] = len(info.shape) == 2
            break
    depths = [level["depth"] for level in levels]
    adapter.finish_unet_config(config, header, channels, depths, mid_depth)
    return config


def vae_config(header: SafetensorsHeader, template: dict, prefix: str = VAE) -> dict:
    vae = re.escape(prefix)
    _refuse_beyond(header, "VAE levels", vae + r"(?:encoder\.down|decoder\.up)\.(\d+)\.", MAX_VAE_LEVELS)
    _refuse_beyond(header, "blocks in one VAE level", vae + r"(?:encoder\.down|decoder\.up)\.\d+\.block\.(\d+)\.",
                   MAX_VAE_BLOCKS)
    config = dict(template)
    levels = _indices(header, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    channels = [header.shape(f"{prefix}encoder.down.{i}.block.0.conv2.weight")[0] for i in levels]
    config["block_out_channels"] = channels
    config["layers_per_block"] = len(_indices(header, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\."))
    config["down_block_types"] = ["DownEncoderBlock2D"] * len(channels)
    config["up_block_types"] = ["UpDecoderBlock2D"] * len(channels)
    config["latent_channels"] = header.shape(prefix + "encoder.conv_out.weight")[0] // 2
    return config


def text_encoder_config(header: SafetensorsHeader, where: CheckpointTextEncoder, template: dict) -> dict:
    prefix = where.prefix
    layers_pattern = r"encoder\.layers\.(\d+)\." if where.layout == "hf" else r"transformer\.resblocks\.(\d+)\."
    _refuse_beyond(header, f"layers in its {where.folder.replace('_', ' ')}", re.escape(prefix) + layers_pattern,
                   where.max_layers)
    config = dict(template)
    if where.layout == "hf":
        vocab, hidden = header.shape(prefix + "embeddings.token_embedding.weight")
        positions = header.shape(prefix + "embeddings.position_embedding.weight")[0]
        layers = len(_indices(header, re.escape(prefix) + r"encoder\.layers\.(\d+)\."))
        intermediate = header.shape(prefix + "encoder.layers.0.mlp.fc1.weight")[0]
    else:  # OpenCLIP
        vocab, hidden = header.shape(prefix + "token_embedding.weight")
        positions = header.shape(prefix + "positional_embedding")[0]
        layers = len(_indices(header, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\."))
        if layers == 24 and where.drops_last_layer:
            layers = 23  # SD 2.x uses the penultimate layer; diffusers drops the last (its ignore list)
        intermediate = header.shape(prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0]
        projection = header.shape(prefix + "text_projection")
        if projection is not None and where.projection:  # SDXL's pooled output
            config["projection_dim"] = projection[1]
    config.update(
        vocab_size=vocab,
        hidden_size=hidden,
        max_position_embeddings=positions,
        num_hidden_layers=layers,
        intermediate_size=intermediate,
        num_attention_heads=max(1, hidden // 64),
    )
    return config


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _drop_defaults(config: dict, template: dict, cls: type) -> dict:
    """Keys the template leaves out, set to the class's own default, change nothing: drop them
    so an official checkpoint compares equal to its shipped config."""
    import inspect

    defaults = {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty
    }
    return {
        k: v
        for k, v in config.items()
        if k in template or k not in defaults or _plain(defaults[k]) != v
    }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def checkpoint_config_dir(info: ModelInfo, header: SafetensorsHeader) -> Path:
    """A diffusers config folder that fits this checkpoint: the shipped one, or a patched copy."""
    adapter = adapter_for(info.family)
    if not isinstance(adapter, UNetFamily):
        raise TypeError(f"{info.family.label} checkpoints are not in the original SD layout")
    config_name = adapter.config_name(info)
    template_dir = adapter.config_dir(info)
    configs: dict[str, dict] = {}
    unet_t = _read(template_dir / "unet" / "config.json")
    from diffusers import UNet2DConditionModel

    configs["unet"] = _drop_defaults(unet_config(header, adapter, unet_t), unet_t, UNet2DConditionModel)
    if info.has_vae:
        configs["vae"] = vae_config(header, _read(template_dir / "vae" / "config.json"))
    for where in adapter.checkpoint_text_encoders:
        template = _read(template_dir / where.folder / "config.json")
        configs[where.folder] = text_encoder_config(header, where, template)
    scheduler = _read(template_dir / "scheduler" / "scheduler_config.json")
    if info.prediction:
        scheduler["prediction_type"] = info.prediction
    if info.zero_snr:
        scheduler.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    configs["scheduler"] = scheduler
    changed = {
        name: config
        for name, config in configs.items()
        if config != _read(template_dir / name / ("scheduler_config.json" if name == "scheduler" else "config.json"))
    }
    if not changed:
        return template_dir
    digest = hashlib.sha1(json.dumps([config_name, changed], sort_keys=True).encode()).hexdigest()[:16]
    target = data_home() / "cache" / "model-configs" / f"{config_name}-{digest}"
    if not (target / "model_index.json").is_file():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(template_dir, staging)
        for name, config in changed.items():
            file = "scheduler_config.json" if name == "scheduler" else "config.json"
            (staging / name / file).write_text(json.dumps(config, indent=2), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target
