"""Flux.1: a flow-matching transformer read by CLIP-L (pooled) and T5-XXL (sequence), 16-channel
latents. Its files come whole (all-in-one), as ComfyUI's split parts, as a GGUF, or as a diffusers
folder; what each is comes from studio.core.models.flux_detect (tensor names and shapes only)."""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.models import flux_detect as fd
from studio.core.models.detectors.base import Detector, folder_weight_bytes
from studio.core.models.family import Family, ModelInfo, PanelFacts
from studio.core.models.safetensors_header import SafetensorsHeader

_PART_HINT = (
    "Choose the Flux transformer (or an all-in-one Flux checkpoint) as the model; the studio finds this part "
    "beside it in ComfyUI's folders, or pass it with --text-encoder / --vae."
)
# (steps, guidance, sampler) the studio proposes per variant: [dev] and Fill as Forge and ComfyUI
# start them (Fill's model card asks for guidance 30), [schnell] in its 4 distilled steps.
_RECOMMENDED = {fd.DEV: (20, 3.5, "Euler"), fd.FILL: (20, 30.0, "Euler"), fd.SCHNELL: (4, 1.0, "Euler")}


def flux_info(flux: fd.FluxFile) -> ModelInfo:
    """The ModelInfo of a Flux transformer or all-in-one file."""
    return ModelInfo(
        path=flux.path,
        single_file=True,
        family=Family.FLUX,
        inpaint=flux.variant == fd.FILL,
        prediction="flow",
        has_vae=flux.has_vae,
        size_bytes=flux.size_bytes,
        dtype=flux.dtype,
        variant=flux.variant or fd.DEV,
    )


class FluxDetector(Detector):
    """Asked after the UNet families: their markers never occur in Flux files, and most files in
    a library are theirs."""

    family = Family.FLUX
    label = "Flux.1"
    folder_classes = ("FluxPipeline", "FluxFillPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")
    default_sampler = "Euler"

    def matches_file(self, header: SafetensorsHeader) -> bool:
        try:
            return fd.inspect_flux_header(header) is not None
        except StudioError:
            return True  # a Flux-like file it cannot run: inspect_file says what it is

    def inspect_file(self, header: SafetensorsHeader) -> ModelInfo:
        flux = fd.inspect_flux_header(header)
        return self._info(flux, header.path)

    def inspect_gguf(self, path: Path) -> ModelInfo:
        from studio.core.models.gguf_header import read_gguf_header

        flux = fd.inspect_flux_gguf(read_gguf_header(path))
        if flux is None:
            raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is a GGUF file but not a Flux.1 transformer.",
                              "Choose a Flux.1 GGUF (city96's conversions) or a .safetensors checkpoint.")
        return self._info(flux, path)

    def _info(self, flux: fd.FluxFile | None, path: Path) -> ModelInfo:
        if flux is None:
            raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is not a Flux model.")
        if flux.kind not in (fd.TRANSFORMER, fd.ALL_IN_ONE):
            raise StudioError(ErrorKind.BAD_MODEL, f"{path.name} is a {flux.label}, a part of a Flux model, not a model.",
                              _PART_HINT)
        return flux_info(flux)

    def inspect_folder(self, folder: Path, index: dict, read_config) -> ModelInfo:
        transformer = read_config("transformer/config.json")
        if transformer.get("in_channels") == fd.FILL_IN or index.get("_class_name") == "FluxFillPipeline":
            variant = fd.FILL
        else:
            variant = fd.DEV if transformer.get("guidance_embeds", True) else fd.SCHNELL
        size = folder_weight_bytes(folder)
        dtype = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(str(transformer.get("torch_dtype", "")), "")
        return ModelInfo(path=folder, single_file=False, family=self.family, inpaint=variant == fd.FILL,
                         prediction="flow", has_vae=(folder / "vae").is_dir(), size_bytes=size, dtype=dtype,
                         variant=variant)

    # -- what the studio shows and proposes --------------------------------------------------
    def model_label(self, info: ModelInfo) -> str:
        return {fd.DEV: "Flux.1 [dev]", fd.SCHNELL: "Flux.1 [schnell]", fd.FILL: "Flux.1 Fill"}.get(info.variant, "Flux.1")

    def panel(self, info: ModelInfo) -> PanelFacts:
        schnell = info.variant == fd.SCHNELL
        return PanelFacts(guidance_label="Distilled CFG", guidance=not schnell, negative_prompt=False, clip_skip=False,
                          token_limit=256 if schnell else 512, token_counter="t5")

    def native_size(self, info: ModelInfo) -> int:
        return 1024

    def recommended(self, info: ModelInfo) -> tuple[int | None, float | None, str | None]:
        return _RECOMMENDED.get(info.variant, _RECOMMENDED[fd.DEV])

    # -- LoRAs made for Flux (applied in a later version; named so the note is right) --------
    lora_prefixes = ("lora_unet_double_blocks", "lora_unet_single_blocks", "lora_transformer_single_transformer_blocks",
                     "transformer.single_transformer_blocks.", "diffusion_model.double_blocks.", "double_blocks.")

    def lora_metadata_matches(self, text: str, metadata: dict[str, str]) -> bool:
        return "flux" in text
