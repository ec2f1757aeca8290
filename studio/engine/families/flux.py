"""Flux.1: a flow-matching transformer (FluxTransformer2DModel) read by CLIP-L (pooled) and T5-XXL
(sequence), 16-channel latents packed into 2x2 patches.

Loading goes through studio.engine.flux_loading (every layout artists have; fp8 stays fp8, GGUF
stays quantized) with the parts found by studio.core.models.flux_parts. [dev] and Fill are
guidance-distilled: the request's guidance is the "Distilled CFG" the transformer is conditioned
on, and there is no negative pass; [schnell] takes no guidance at all.

Samplers: Flux is sampled along flow-matching sigmas with the family's shift (the scheduler config
shipped with each variant: [dev] and Fill shift with the image size, [schnell] does not). "Euler"
is FlowMatchEulerDiscreteScheduler, Forge's and ComfyUI's Euler for Flux. The A1111 samplers
without a flow-matching form in this diffusers run as Euler, and the image's note says so.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import torch

from studio.core.generation.request import Mode
from studio.core.models import flux_detect as fd
from studio.core.models.family import Family, ModelInfo
from studio.engine.families.base import FamilyAdapter, LatentFormat, TextEncoder
from studio.engine.flux_latents import FLUX_RGB_BIAS, FLUX_RGB_FACTORS, flow_x0

FLUX_SAMPLERS = ("Euler",)  # A1111 names that have a flow-matching scheduler here


# The Flux VAE's latents (ae.safetensors: scaling 0.3611, shift 0.1159), ComfyUI's preview factors.
FLUX_LATENT = LatentFormat(channels=16, scaling_factor=0.3611,
                           preview_factors=tuple((r, g, b) for r, g, b in FLUX_RGB_FACTORS),
                           preview_bias=(FLUX_RGB_BIAS[0], FLUX_RGB_BIAS[1], FLUX_RGB_BIAS[2]))


class FlowX0Tap:
    """The x0 estimate of a flow-matching step, which FlowMatchEulerDiscreteScheduler does not
    return: x_t = (1 - sigma) x0 + sigma noise and the model predicts v = noise - x0, so
    x0 = x_t - sigma v (one multiply-add on the latents per step)."""

    def __init__(self, scheduler):
        self.x0: torch.Tensor | None = None
        original = scheduler.step

        @functools.wraps(original)  # the pipeline inspects step()'s parameters
        def step(model_output, timestep, sample, *args, **kwargs):
            if scheduler.step_index is None:
                scheduler._init_step_index(timestep)
            sigma = scheduler.sigmas[scheduler.step_index].to(sample.device, sample.dtype)
            self.x0 = flow_x0(sample, model_output, sigma)
            return original(model_output, timestep, sample, *args, **kwargs)

        scheduler.step = step


class FluxAdapter(FamilyAdapter):
    family = Family.FLUX
    denoiser = "transformer"
    pipeline_names = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")
    configs = ("flux-dev", "flux-schnell", "flux-fill")
    latent = FLUX_LATENT
    loads_itself: ClassVar[bool] = True
    applies_loras: ClassVar[bool] = False
    finds_parts: ClassVar[bool] = True

    def pipeline_classes(self) -> dict:
        import diffusers

        return {mode: getattr(diffusers, name) for mode, name in zip((Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT),
                                                                       self.pipeline_names, strict=True)}

    def load_class(self, info: ModelInfo) -> type:
        from diffusers import FluxFillPipeline, FluxPipeline

        return FluxFillPipeline if info.variant == fd.FILL else FluxPipeline

    def config_name(self, info: ModelInfo) -> str:
        return f"flux-{info.variant or fd.DEV}"

    def compute_dtype(self, device: str, dtype: torch.dtype) -> torch.dtype:
        """Flux's activations overflow fp16: bf16 on GPUs (as BFL, ComfyUI and Forge run it)."""
        return dtype if device == "cpu" else torch.bfloat16

    def load(self, info: ModelInfo, dtype: torch.dtype, parts):
        """The pipeline from the model file and its parts (studio.core.models.flux_parts.FluxParts)."""
        from studio.engine.flux_loading import load_flux_folder, load_flux_pipeline

        if not info.single_file:
            pipe = load_flux_folder(info.path, dtype)
        else:
            pipe = load_flux_pipeline(info.path, clip_l=parts.path(fd.CLIP_L), t5=parts.path(fd.T5),
                                      vae=parts.path(fd.VAE), dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def load_vae(self, path: str, info: ModelInfo, dtype: torch.dtype):
        from studio.core.errors import ErrorKind, StudioError
        from studio.engine.flux_loading import load_vae

        part = fd.inspect_flux_path(path)
        if part is None or part.kind != fd.VAE:
            raise StudioError(ErrorKind.BAD_MODEL, f"{path} is not a Flux VAE (16 latent channels).",
                              "Choose the Flux VAE (ae.safetensors) for a Flux model.")
        return load_vae(part.path, "", dtype)

    def mode_pipeline(self, pipe, mode: Mode):
        from studio.engine.flux_loading import mode_pipeline

        view = mode_pipeline(pipe, mode.value)
        view.set_progress_bar_config(disable=True)
        return view

    # -- prompts -----------------------------------------------------------------------------
    def text_encoders(self, pipe) -> list[TextEncoder]:
        return [TextEncoder(pipe.tokenizer, pipe.text_encoder, "clip_l", penultimate=False, pooled=True),
                TextEncoder(pipe.tokenizer_2, pipe.text_encoder_2, "t5xxl", penultimate=False)]

    def sequence_length(self, info: ModelInfo) -> int:
        """T5 tokens the transformer reads: 512 for [dev] and Fill, 256 for [schnell] (BFL's own)."""
        return 256 if info.variant == fd.SCHNELL else 512

    def encode_request(self, model, pipe, request, steps):
        from studio.engine.flux_prompt import encode_flux_request

        return encode_flux_request(model, pipe, request, steps, self.sequence_length(model.info))

    # -- sampling ----------------------------------------------------------------------------
    def make_scheduler(self, name: str, base_config: dict, seed: int | None):
        """(scheduler, note): the flow-matching Euler with the model's shift; other samplers say
        they were not used."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler = FlowMatchEulerDiscreteScheduler.from_config(base_config)
        note = "" if name in FLUX_SAMPLERS else f"Flux runs with Euler here: {name} has no flow-matching form in this version."
        return scheduler, note

    def x0_tap(self, scheduler):
        return FlowX0Tap(scheduler)

    def spatial_latents(self, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        from studio.engine.flux_latents import unpack_latents

        return unpack_latents(latents, height, width) if latents.ndim == 3 else latents

    def latent_shape(self, pipe, width: int, height: int) -> tuple[int, int, int, int]:
        from studio.engine.flux_latents import LATENT_CHANNELS, latent_size

        h, w = latent_size(height, width)
        return (1, LATENT_CHANNELS, h, w)

    def pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        from studio.engine.flux_latents import pack_latents

        return pack_latents(latents)

    def call_arguments(self, request) -> dict:
        """The size in every mode: Flux's img2img pipeline would otherwise make 1024x1024."""
        return {"width": request.width, "height": request.height}
