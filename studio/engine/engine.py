"""The engine: owns one loaded pipeline and runs jobs one at a time, reporting typed events.

It knows nothing of Qt. Whoever drives it (the Qt worker thread, the CLI, the benchmark, tests)
passes a callback for events and a threading.Event for cancel.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from studio.core.errors import ErrorKind, StudioError
from studio.core.events import (
    EventSink,
    ImageFinished,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoaded,
    ModelLoading,
    StepProgress,
)
from studio.core.outputs import OutputWriter
from studio.core.request import GenerationRequest, Mode
from studio.engine.devices import resolve_device
from studio.engine.errors import GenerationCancelled, free_device_memory, is_out_of_memory, to_studio_error
from studio.engine.image_inputs import prepare_img2img, prepare_inpaint
from studio.engine.loader import check_model_folder, load_pipeline, pipeline_for_mode
from studio.engine.previews import LatentPreviewer, X0Tap, previewer_for
from studio.engine.schedulers import make_scheduler


@dataclass
class LoadedModel:
    path: str
    device: str
    dtype: torch.dtype
    pipe: object  # the pipeline as loaded (txt2img, or inpaint for 9-channel models)
    previewer: LatentPreviewer
    base_scheduler_config: dict
    views: dict = field(default_factory=dict)  # Mode -> pipeline sharing pipe's components

    @property
    def inpaint_only(self) -> bool:
        return self.pipe.unet.config.in_channels == 9

    def pipeline(self, mode: Mode):
        """The pipeline for a mode, made once with from_pipe: same weights, no copy, no reload."""
        if mode not in self.views:
            self.views[mode] = pipeline_for_mode(self.pipe, mode)
        return self.views[mode]


class Engine:
    def __init__(self, outputs: OutputWriter, emit: EventSink, previews: bool = True):
        self.outputs = outputs
        self.emit = emit
        self.previews = previews
        self.device_choice = "auto"
        self.model: LoadedModel | None = None

    # -- models --------------------------------------------------------------------------
    def load(self, path: str, device_choice: str | None = None) -> LoadedModel:
        """Load (or keep) the model at `path` on the chosen device. Raises StudioError."""
        if device_choice is not None:
            self.device_choice = device_choice
        device, dtype = resolve_device(self.device_choice)
        path = str(check_model_folder(path).resolve())
        if self.model and (self.model.path, self.model.device) == (path, device):
            return self.model
        self.emit(ModelLoading(path, device))
        started = time.perf_counter()
        self.unload()
        pipe = load_pipeline(path, device, dtype)
        self.model = LoadedModel(
            path, device, dtype, pipe, previewer_for(Path(path), pipe.vae), dict(pipe.scheduler.config)
        )
        self.emit(ModelLoaded(path, device, str(dtype).removeprefix("torch."), time.perf_counter() - started))
        return self.model

    def unload(self) -> None:
        if self.model is not None:
            self.model = None
            free_device_memory()

    # -- jobs ----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, cancel: threading.Event) -> None:
        """Run one job to the end. Never raises: failures become JobFailed events."""
        paths: list[Path] = []
        try:
            request = request.validated()
            model = self.load(request.model)
            self.emit(JobStarted(request))
            started = time.perf_counter()
            for index in range(request.batch_count):
                if cancel.is_set():
                    raise GenerationCancelled
                single = request.for_image(index)
                pixels = self._run_one(model, single, index, cancel)
                path, single = self.outputs.save(Image.fromarray(pixels), single)  # on disk before shown
                paths.append(path)
                self.emit(ImageFinished(index, single, path, pixels))
            self.emit(JobFinished(request, tuple(paths), time.perf_counter() - started))
        except GenerationCancelled:
            self.emit(JobCancelled(request, tuple(paths)))
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user as data
            if is_out_of_memory(exc):
                free_device_memory()
            self.emit(JobFailed(to_studio_error(exc), request))
        finally:
            if self.model is not None:
                # An exception from the callback skips this inside the pipeline; it re-arms
                # offload hooks so the next job starts from the same state.
                self.model.pipe.maybe_free_model_hooks()

    def _run_one(self, model: LoadedModel, request: GenerationRequest, index: int, cancel: threading.Event):
        pipe, inputs, inpaint = self._mode_inputs(model, request)
        pipe.scheduler = make_scheduler(request.sampler, model.base_scheduler_config, request.seed)
        tap = X0Tap(pipe.scheduler)
        last = [time.perf_counter()]

        def on_step_end(pipeline, step_index, timestep, tensors):
            if cancel.is_set():
                raise GenerationCancelled  # abort now: no further steps, no VAE decode
            now = time.perf_counter()
            preview = None
            if self.previews:
                latents = tap.x0 if tap.x0 is not None else tensors["latents"]
                preview = model.previewer.to_rgb(latents)
            self.emit(StepProgress(index, step_index + 1, pipeline.num_timesteps, preview, now - last[0]))
            last[0] = now
            return tensors

        generator = torch.Generator("cpu").manual_seed(request.seed)  # same noise on every device
        result = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=["latents"],
            **inputs,
        )
        image = result.images[0]
        if not np.isfinite(image).all():
            raise StudioError(
                ErrorKind.INTERNAL,
                "The model produced an invalid (NaN) image.",
                "This can happen in half precision on some devices; try the CPU device.",
            )
        pixels = (image * 255).round().clip(0, 255).astype(np.uint8)
        return inpaint.composite(pixels) if inpaint else pixels

    def _mode_inputs(self, model: LoadedModel, request: GenerationRequest):
        """(pipeline, its image arguments, inpaint job or None) for the request's mode.

        All three pipelines share one set of weights (from_pipe). A dedicated 9-channel
        inpainting model does txt2img and img2img as inpainting with a full mask."""
        size = {"width": request.width, "height": request.height}
        full = Image.new("L", (request.width, request.height), 255)
        if request.mode is Mode.INPAINT:
            job = prepare_inpaint(request)
            return model.pipeline(Mode.INPAINT), {"image": job.image, "mask_image": job.mask, "strength": request.strength, **size}, job
        if request.mode is Mode.IMG2IMG:
            image = prepare_img2img(request)
            if model.inpaint_only:
                return model.pipeline(Mode.INPAINT), {"image": image, "mask_image": full, "strength": request.strength, **size}, None
            return model.pipeline(Mode.IMG2IMG), {"image": image, "strength": request.strength}, None
        if model.inpaint_only:
            blank = Image.new("RGB", (request.width, request.height), (127, 127, 127))
            return model.pipeline(Mode.INPAINT), {"image": blank, "mask_image": full, "strength": 1.0, **size}, None
        return model.pipeline(Mode.TXT2IMG), size, None
