"""What the engine asks of a model family: one adapter per family, one job loop for all.

An adapter holds every way a family differs once its files are open: the pipeline classes per
mode, the shipped configs for single files, tokenizers and text encoders, how the prompt
reaches the denoiser, the latent format, extra call arguments. The job loop
(studio.engine.engine) and the shared A1111 prompt rules (studio.engine.prompt_encoding) call
these and never test the family themselves. Detection (which family a file is) is pure Python
and lives in studio.core.models.detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from studio.core.generation.request import Mode
from studio.core.models.family import Family, ModelInfo
from studio.core.storage.paths import resources_dir

MODES = (Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT)


def configs_root() -> Path:
    """resources/model-configs: the diffusers configs shipped for opening single files."""
    return resources_dir() / "model-configs"


@dataclass(frozen=True)
class LatentFormat:
    """The denoiser's latent space as the VAE defines it, and its cheap RGB preview:
    rgb = latent . preview_factors + preview_bias, in [-1, 1] (studio.engine.previews)."""

    channels: int
    scaling_factor: float  # what the pipeline multiplies the VAE's latents by
    preview_factors: tuple[tuple[float, float, float], ...]
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def fits(self, vae) -> bool:
        """Whether `vae` makes latents of this format (its channels and scaling)."""
        scaling = float(vae.config.get("scaling_factor", 1.0) or 1.0)
        return vae.config.latent_channels == self.channels and abs(scaling - self.scaling_factor) < 1e-4


@dataclass
class TextEncoder:
    """One tokenizer and text encoder of a pipeline, and how its output is read."""

    tokenizer: object
    encoder: torch.nn.Module
    key: str  # this encoder's vectors in an embedding file
    penultimate: bool  # hidden states counted from the penultimate layer, no final layer norm (SDXL)
    pooled: bool = False  # its projected pooled output conditions the denoiser too (SDXL's second)

    @property
    def width(self) -> int:
        return self.encoder.get_input_embeddings().embedding_dim


class FamilyAdapter:
    """The base every family's adapter extends; the class attributes are its facts."""

    family: ClassVar[Family]
    denoiser: ClassVar[str] = "unet"  # the pipeline component that denoises ("transformer" for DiT models)
    pipeline_names: ClassVar[tuple[str, str, str]]  # diffusers classes for txt2img, img2img, inpaint
    configs: ClassVar[tuple[str, ...]]  # its folders under resources/model-configs/
    latent: ClassVar[LatentFormat]
    # The prompt tensors a step callback may replace (prompt editing), as the pipeline names them.
    prompt_tensor_inputs: ClassVar[tuple[str, ...]] = ("prompt_embeds",)
    loads_itself: ClassVar[bool] = False  # True: load() builds the pipeline, not from_single_file/from_pretrained
    finds_parts: ClassVar[bool] = False  # True: a model file may need parts found beside it (Flux's text encoders)
    applies_loras: ClassVar[bool] = True  # False: LoRA tags get a note and are not applied
    # Whether `a AND b` denoises each part and combines them through CFG (A1111's composable
    # diffusion, studio.engine.composable); otherwise the parts are read as one prompt, with a note.
    composable_prompts: ClassVar[bool] = False

    # -- loading -----------------------------------------------------------------------------
    def pipeline_classes(self) -> dict[Mode, type]:
        """The txt2img / img2img / inpaint pipeline classes (all share one set of weights)."""
        import diffusers

        return {mode: getattr(diffusers, name) for mode, name in zip(MODES, self.pipeline_names, strict=True)}

    def load_class(self, info: ModelInfo) -> type:
        """Inpainting models load as the inpaint pipeline, everything else as txt2img."""
        return self.pipeline_classes()[Mode.INPAINT if info.inpaint else Mode.TXT2IMG]

    def config_name(self, info: ModelInfo) -> str:
        """Which of its shipped config folders fits this model."""
        raise NotImplementedError

    def config_dir(self, info: ModelInfo) -> Path:
        return configs_root() / self.config_name(info)

    def single_file_config(self, info: ModelInfo, header) -> Path:
        """A diffusers config folder that fits this single file (the shipped one, or a patched copy)."""
        return self.config_dir(info)

    def load_arguments(self) -> dict:
        """Extra from_pretrained / from_single_file arguments (components left out...)."""
        return {}

    def tokenizers(self) -> dict:
        """Tokenizers handed to from_single_file (single files carry none)."""
        return {}

    def after_load(self, pipe, info: ModelInfo) -> None:
        """Settle what only the loaded weights can tell."""

    def denoiser_of(self, pipe) -> torch.nn.Module:
        return getattr(pipe, self.denoiser)

    def compute_dtype(self, device: str, dtype: torch.dtype) -> torch.dtype:
        """The dtype the family computes in on `device` (`dtype`: the device's usual one)."""
        return dtype

    def load(self, info: ModelInfo, dtype: torch.dtype, parts):
        """The pipeline, for families that build it themselves (loads_itself)."""
        raise NotImplementedError

    def load_vae(self, path: str, info: ModelInfo, dtype: torch.dtype):
        """A standalone VAE file for this family's models (None: the shared SD reader)."""
        return None

    def mode_pipeline(self, pipe, mode: Mode):
        """A pipeline for `mode` that shares `pipe`'s components: no copy, no reload."""
        cls = self.pipeline_classes()[mode]
        if type(pipe) is cls:
            return pipe
        # from_pipe casts every shared module to its dtype, fp32 unless told: on a GPU the
        # first img2img/inpaint job would double the weights' memory and halve every later job's speed.
        view = cls.from_pipe(pipe, dtype=self.denoiser_of(pipe).dtype)
        view.set_progress_bar_config(disable=True)
        return view

    # -- prompts -----------------------------------------------------------------------------
    def text_encoders(self, pipe) -> list[TextEncoder]:
        raise NotImplementedError

    def clip_skip(self, requested: int) -> int:
        """The clip skip the family's encoders apply for the one asked for (A1111's rule)."""
        return 1

    def zero_empty_negative(self, pipe) -> bool:
        """Whether an empty negative prompt is zeros instead of the encoded empty text."""
        return False

    def encode_request(self, model, pipe, request, steps):
        """The family's own prompt encoding (an EncodedPrompt), or None for the shared A1111 CLIP
        rules (studio.engine.prompt_encoding)."""
        return None

    # -- the call ----------------------------------------------------------------------------
    def call_arguments(self, request) -> dict:
        """Pipeline arguments beyond prompt, size, steps and guidance."""
        return {}

    def make_scheduler(self, name: str, base_config: dict, seed: int | None):
        """(scheduler for the A1111 sampler `name`, a note when another one runs instead)."""
        from studio.engine.schedulers import make_scheduler

        return make_scheduler(name, base_config, seed), ""

    def x0_tap(self, scheduler):
        """What keeps each step's x0 estimate for the previews."""
        from studio.engine.previews import X0Tap

        return X0Tap(scheduler)

    # -- latents -------------------------------------------------------------------------------
    def latent_shape(self, pipe, width: int, height: int) -> tuple[int, int, int, int]:
        """(1, C, h, w): the starting noise of a width x height picture, as the pipeline draws it."""
        from studio.engine.noise import latent_shape

        return latent_shape(pipe, width, height)

    def pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) latents in the form the pipeline takes them (Flux packs them)."""
        return latents

    def spatial_latents(self, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """The pipeline's latents of a width x height picture as (B, C, h, w)."""
        return latents
