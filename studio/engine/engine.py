"""The engine: owns one loaded pipeline and runs jobs one at a time, reporting typed events.

It knows nothing of Qt. Whoever drives it (the Qt worker thread, the CLI, the benchmark, tests)
passes a callback for events and a threading.Event for cancel.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
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
from studio.core.formats.infotext import lora_hashes, ti_hashes
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.models.flux_parts import FluxParts, find_parts
from studio.core.models.model_detect import ModelInfo, inspect_model
from studio.core.models.model_hash import file_sha256, short_hash
from studio.core.storage.outputs import OutputWriter
from studio.engine.composable import compose_denoiser, prompt_for_pass
from studio.engine.devices import resolve_device
from studio.engine.errors import GenerationCancelled, free_device_memory, is_out_of_memory, to_studio_error
from studio.engine.families import FamilyAdapter, adapter_for
from studio.engine.hires import hires_pass, hires_steps, wants_hires
from studio.engine.image_inputs import prepare_img2img, prepare_inpaint
from studio.engine.loader import load_pipeline, load_vae_file, move_to_device, pipeline_for_mode
from studio.engine.lora import engine_lora_folders, loras_for_job
from studio.engine.memory import MemoryOptions, load_note
from studio.engine.noise import image_request, initial_noise, vary_added_noise
from studio.engine.previews import LatentPreviewer, X0Tap, previewer_for
from studio.engine.prompt_encoding import PromptSwitches, prompt_notes
from studio.engine.vae import VaeDecoder


class StepReporter:
    """The step callback of a job's passes: cancel at the next step, a preview of the x0
    estimate, and step numbers that run on across passes (hires fix) against one total."""

    def __init__(self, engine: Engine, model: LoadedModel, index: int, cancel: threading.Event, extra_steps: int = 0):
        self.engine, self.model, self.index, self.cancel = engine, model, index, cancel
        self.extra_steps = extra_steps  # steps of passes still to come
        self.done = 0  # steps of finished passes
        self.tap: X0Tap | None = None
        self.size = (0, 0)  # (width, height) of the pass running now: the pipeline's latents may be packed
        self.notes: list[str] = []  # what the passes say about how they ran (a sampler run as another)
        self.switches: PromptSwitches | None = None  # the pass's prompt editing, if its prompt edits
        self.last = time.perf_counter()
        self._this_pass = 0  # steps of the pass running now (known once it has started)

    def on_step_end(self, pipeline, step_index, timestep, tensors):
        if self.cancel.is_set():
            raise GenerationCancelled  # abort now: no further steps, no VAE decode
        now = time.perf_counter()
        preview = None
        if self.engine.previews:
            latents = self.tap.x0 if self.tap is not None and self.tap.x0 is not None else tensors["latents"]
            preview = self.model.previewer.to_rgb(self.model.adapter.spatial_latents(latents, *self.size))
        self._this_pass = pipeline.num_timesteps
        total = self.done + pipeline.num_timesteps + self.extra_steps
        self.engine.emit(StepProgress(self.index, self.done + step_index + 1, total, preview, now - self.last,
                                      job_id=self.engine.job_id))
        self.last = now
        if self.switches is not None:
            tensors = self.switches.step_end(pipeline, step_index, tensors)  # the next step's prompt
        return tensors

    def pass_done(self) -> None:
        self.done += self._this_pass
        self._this_pass = 0


@dataclass
class LoadedModel:
    path: str
    device: str
    dtype: torch.dtype
    pipe: object  # the pipeline as loaded (txt2img, or inpaint for 9-channel models)
    previewer: LatentPreviewer
    base_scheduler_config: dict
    info: ModelInfo
    decoder: VaeDecoder
    views: dict = field(default_factory=dict)  # Mode -> pipeline sharing pipe's components
    vae_path: str = ""  # the single-file VAE in use; "" = the model's own
    own_vae: object = None
    hashing: FileHash | None = None  # A1111's model hash, computed in the background
    parts: tuple[str, ...] = ()  # part files chosen for it (Flux's text encoders), as asked
    prompt_cache: dict = field(default_factory=dict)  # this job's encoded prompts (batch, hires pass)

    @property
    def adapter(self) -> FamilyAdapter:
        return adapter_for(self.info.family)

    @property
    def inpaint_only(self) -> bool:
        """A dedicated inpainting model (a 9-channel UNet) does every mode as inpainting."""
        return self.info.inpaint

    def pipeline(self, mode: Mode):
        """The pipeline for a mode, made once with from_pipe: same weights, no copy, no reload."""
        if mode not in self.views:
            self.views[mode] = pipeline_for_mode(self.pipe, self.info.family, mode)
        return self.views[mode]

    def set_vae(self, vae) -> None:
        for pipe in (self.pipe, *self.views.values()):
            pipe.vae = vae  # diffusers' __setattr__ registers the module too

    def model_hash(self) -> str:
        """A1111's short hash of a single-file model ("" for folders); waits for the background hash."""
        sha256 = self.hashing.result() if self.hashing is not None else ""
        return short_hash(sha256) if sha256 else ""


class FileHash:
    """A file's SHA-256 computed on a daemon thread. The thread holds only the path, never the
    model: switching models while a 6 GB file hashes must free the old weights at once."""

    def __init__(self, path: str):
        self._path, self._sha256 = path, ""
        self._thread = threading.Thread(target=self._run, name="model-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._sha256 = file_sha256(self._path)
        except OSError:
            self._sha256 = ""

    def result(self) -> str:
        self._thread.join()
        return self._sha256


class Engine:
    def __init__(self, outputs: OutputWriter, emit: EventSink, previews: bool = True):
        self.outputs = outputs
        self.emit = emit
        self.previews = previews
        self.device_choice = "auto"
        self.memory = MemoryOptions()
        self.model: LoadedModel | None = None
        self.library_dirs: list[str] = []  # the artist's model folders: LoRA folders are found beside them
        self.lora_dirs: list[str] = []  # LoRA folders named directly (studio generate --lora-dir)
        self.job_id = ""  # the running job's id, stamped on its events

    # -- models --------------------------------------------------------------------------
    def load(self, path: str, device_choice: str | None = None, vae: str = "",
             text_encoders: tuple[str, ...] = ()) -> LoadedModel:
        """Load (or keep) the model at `path` on the chosen device. Raises StudioError.
        `text_encoders`: part files chosen for a model that needs them (Flux); others are found."""
        if device_choice is not None:
            self.device_choice = device_choice
        device, dtype = resolve_device(self.device_choice)
        info = inspect_model(path)
        adapter = adapter_for(info.family)
        dtype = adapter.compute_dtype(device, dtype)
        path = str(info.path.resolve())
        text_encoders = tuple(text_encoders)
        if self.model and (self.model.path, self.model.device, self.model.parts) == (path, device, text_encoders):
            self.use_vae(vae)
            return self.model
        started = time.perf_counter()
        self.unload()  # first: the model being replaced must not count against the new one's memory
        parts = None
        if adapter.finds_parts and info.single_file:
            # A transformer alone: its text encoders and VAE come from the chosen files or the library.
            parts = flux_parts(info, text_encoders, "" if info.has_vae else vae, self.library_dirs)
            if parts.missing:
                raise parts.missing_error()
        note = " ".join(n for n in (parts.note if parts else "", load_note(info, device, self.memory, parts)) if n)
        self.emit(ModelLoading(path, device, note))
        # A checkpoint without its own VAE needs the chosen one at load time.
        pipe = load_pipeline(info, device, dtype, vae_path=None if info.has_vae else (vae or None), parts=parts)
        move_to_device(pipe, info, device, self.memory.cpu_offload, self.memory.sequential_offload)
        self.memory.apply(pipe, device)
        model = LoadedModel(
            path, device, dtype, pipe, previewer_for(Path(path), pipe.vae), dict(pipe.scheduler.config), info,
            VaeDecoder(info),
        )
        model.parts = text_encoders
        found_vae = parts is not None and not info.has_vae  # the VAE came with the parts: the model's own
        model.own_vae = pipe.vae if info.has_vae or found_vae else None
        model.vae_path = "" if info.has_vae or found_vae else vae
        model.decoder.reset(model.vae_path)
        if info.single_file:
            model.hashing = FileHash(path)
        self.model = model
        self.use_vae(vae)
        self.emit(ModelLoaded(path, device, str(dtype).removeprefix("torch."), time.perf_counter() - started))
        return self.model

    def use_vae(self, vae: str) -> None:
        """Decode with a single-file VAE ("" = the model's own), swapping only the VAE."""
        model = self.model
        if model is None or (vae or "") == model.vae_path:
            return
        if not vae:
            if model.own_vae is None:
                raise StudioError(ErrorKind.BAD_INPUT, f"{model.info.name} has no VAE of its own; choose one in the VAE picker.")
            new = model.own_vae
        else:
            new = load_vae_file(vae, model.info, model.dtype)
            if not (self.memory.cpu_offload or self.memory.sequential_offload):
                new.to(model.device)
        model.set_vae(new)
        if self.memory.cpu_offload and model.device != "cpu":
            # The new VAE has no offload hook: without one, the pipeline's execution device would
            # read as the CPU and the first job would mix devices.
            model.pipe.enable_model_cpu_offload(device=model.device)
        model.vae_path = vae or ""
        model.decoder.reset(model.vae_path)

    def set_memory(self, options: MemoryOptions) -> None:
        """New memory options; a change of CPU offload takes effect by reloading at the next job."""
        if self.model is not None:
            if (options.cpu_offload, options.sequential_offload) != (self.memory.cpu_offload, self.memory.sequential_offload):
                self.unload()
            else:
                options.apply(self.model.pipe, self.model.device)
        self.memory = options

    def unload(self) -> None:
        if self.model is not None:
            self.model = None
            free_device_memory()

    # -- jobs ----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, cancel: threading.Event, job_id: str = "",
                 save_images: bool = True) -> None:
        """Run one job to the end. Never raises: failures become JobFailed events. Its events
        carry `job_id`. With `save_images` (the default) each image is on disk before its
        ImageFinished; without, ImageFinished comes at once with path None and the caller
        writes the image (studio.core.storage.image_writer), so the next image denoises meanwhile."""
        paths: list[Path] = []
        self.job_id = job_id
        try:
            request = request.validated()
            model = self.load(request.model, vae=request.vae, text_encoders=request.text_encoder_paths)
            model.prompt_cache.clear()  # prompts are encoded once per job, with this job's LoRAs
            self.emit(JobStarted(request, job_id=job_id))
            started = time.perf_counter()
            # A1111's `Lora hashes` and `TI hashes`, from the folders this engine reads, once per job.
            hashes = {"lora_hashes": lora_hashes(request, engine_lora_folders(self)), "ti_hashes": ti_hashes(request)}
            with loras_for_job(self, model, request) as lora_note:  # applied for this job only
                for index in range(request.batch_count):
                    if cancel.is_set():
                        raise GenerationCancelled
                    single = image_request(request, index)  # A1111's seed numbering (variations keep the seed)
                    pixels, note = self._run_one(model, single, index, cancel)
                    single = replace(single, model_hash=model.model_hash(), **hashes)
                    path: Path | None = None
                    if save_images:
                        path, single = self.outputs.save(Image.fromarray(pixels), single)  # on disk before shown
                        paths.append(path)
                    note = " ".join(n for n in (lora_note, note) if n)
                    self.emit(ImageFinished(index, single, path, pixels, note, job_id=job_id))
            self.emit(JobFinished(request, tuple(paths), time.perf_counter() - started, job_id=job_id))
        except GenerationCancelled:
            self.emit(JobCancelled(request, tuple(paths), job_id=job_id))
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - every failure reaches the user
            if is_out_of_memory(exc):
                free_device_memory()
            self.emit(JobFailed(to_studio_error(exc), request, job_id=job_id))
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise  # Ctrl+C in a terminal still stops `studio generate`
        finally:
            if self.model is not None:
                # An exception from the callback skips this inside the pipeline; it re-arms
                # offload hooks so the next job starts from the same state.
                self.model.pipe.maybe_free_model_hooks()

    def _run_one(self, model: LoadedModel, request: GenerationRequest, index: int, cancel: threading.Event):
        """One image: denoise (a second, upscaled pass for hires fix), decode, composite."""
        pipe, inputs, inpaint = self._mode_inputs(model, request)
        progress = StepReporter(self, model, index, cancel, extra_steps=hires_steps(request, model))
        latents = self.denoise(model, pipe, request, inputs, progress)
        notes = prompt_notes(model, request)  # embeddings left out, and why (from this job's encoding)
        notes += progress.notes
        if wants_hires(request):  # (an inpainting model skips it with a note)
            pipe, latents, note = hires_pass(self, model, request, latents, progress)
            notes.append(note)
        image, note = model.decoder.decode(pipe, latents)
        notes.append(note)
        pixels = (image * 255).round().clip(0, 255).astype(np.uint8)
        return (inpaint.composite(pixels) if inpaint else pixels), " ".join(n for n in notes if n)

    def denoise(self, model: LoadedModel, pipe, request: GenerationRequest, inputs: dict, progress: StepReporter,
                vary_img2img_noise: bool = False, hires_of: tuple[int, int] | None = None):
        """One denoising pass of `pipe` with the request's sampler, prompt and seed; the final
        latents (decoded by the caller, where a half-precision overflow can be retried).
        `vary_img2img_noise`: the request's variation seed and "resize seed from" also shape the
        noise an img2img pass adds (the hires fix's second pass, as in A1111).
        `hires_of`: (first pass's steps, hires steps) when this is the hires fix's second pass:
        its prompt edits are scheduled against them, as A1111's hires conds are."""
        adapter = model.adapter
        pipe.scheduler, note = adapter.make_scheduler(request.sampler, model.base_scheduler_config, request.seed)
        if note and note not in progress.notes:
            progress.notes.append(note)
        progress.tap = adapter.x0_tap(pipe.scheduler)
        progress.size = (request.width, request.height)
        generator = torch.Generator("cpu").manual_seed(request.seed)  # same noise on every device
        inputs = {**inputs, **adapter.call_arguments(request)}  # SDXL's size conditioning
        if "image" not in inputs:  # txt2img: variation seeds and "resize seed from" shape the noise
            noise = initial_noise(pipe, request, generator, adapter.latent_shape(pipe, request.width, request.height))
            if noise is not None:
                inputs = {**inputs, "latents": adapter.pipeline_latents(noise)}
        elif vary_img2img_noise:
            vary_added_noise(pipe, request)
        self.memory.apply_for_size(pipe, request.width * request.height)
        # Prompt editing is scheduled in sampler calls, as A1111 counts them: its total is the
        # steps asked for (img2img too: not the fewer it runs), doubled for a second-order sampler.
        order = int(getattr(pipe.scheduler, "order", 1) or 1)
        steps = (request.steps * order, None) if hires_of is None else (hires_of[0] * order, hires_of[1] * order)
        encoded = prompt_for_pass(model, pipe, request, steps)  # AND: one conditioning per part
        progress.switches = encoded.switches
        arguments, tensor_inputs = encoded.arguments, ["latents"]
        if encoded.switches is not None:  # the prompt changes within this pass
            tensor_inputs += encoded.switches.tensor_inputs
        restore_denoiser = compose_denoiser(pipe, encoded)  # AND: the denoiser combines the parts
        try:
            result = pipe(
                **arguments,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance,
                generator=generator,
                output_type="latent",
                callback_on_step_end=progress.on_step_end,
                callback_on_step_end_tensor_inputs=tensor_inputs,
                **inputs,
            )
        finally:
            progress.switches = None
            restore_denoiser()
        progress.pass_done()
        return adapter.spatial_latents(result.images, request.width, request.height)

    def _mode_inputs(self, model: LoadedModel, request: GenerationRequest):
        """(pipeline, its image arguments, inpaint job or None) for the request's mode.

        All three pipelines share one set of weights (from_pipe). A dedicated 9-channel
        inpainting model does txt2img and img2img as inpainting with a full mask."""
        size = {"width": request.width, "height": request.height}
        full = Image.new("L", (request.width, request.height), 255)
        if request.mode is Mode.INPAINT:
            job = prepare_inpaint(request)
            inputs = {"image": job.image, "mask_image": job.mask, "strength": request.strength, **size}
            return model.pipeline(Mode.INPAINT), inputs, job
        if request.mode is Mode.IMG2IMG:
            image = prepare_img2img(request)
            if model.inpaint_only:
                inputs = {"image": image, "mask_image": full, "strength": request.strength, **size}
                return model.pipeline(Mode.INPAINT), inputs, None
            return model.pipeline(Mode.IMG2IMG), {"image": image, "strength": request.strength}, None
        if model.inpaint_only:
            blank = Image.new("RGB", (request.width, request.height), (127, 127, 127))
            return model.pipeline(Mode.INPAINT), {"image": blank, "mask_image": full, "strength": 1.0, **size}, None
        return model.pipeline(Mode.TXT2IMG), size, None


def flux_parts(info: ModelInfo, chosen: tuple[str, ...], vae: str, library_dirs: list[str]) -> FluxParts:
    """The part files of a model file that needs them (studio.core.models.flux_parts)."""
    from studio.core.models.flux_detect import inspect_flux_path

    flux = inspect_flux_path(info.path)
    if flux is None:
        raise StudioError(ErrorKind.BAD_MODEL, f"{info.path.name} is not a Flux model.")
    return find_parts(flux, chosen, vae, library_dirs)
