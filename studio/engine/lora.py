"""LoRAs named in the prompt (`<lora:NAME:WEIGHT>`), applied for one job and taken off after it.

diffusers' LoRA loading does the work (`load_lora_weights` converts kohya/A1111 files; peft wraps
the UNet's and text encoders' layers). A model's pipelines share one UNet and one set of text
encoders (from_pipe), so adapters go onto `model.pipe` once and every mode sees them.

Between jobs the adapters stay loaded but switched off: a disabled peft layer returns its base
layer's output untouched, so a job without LoRAs gives the same pixels as before any LoRA was
loaded. A LoRA used again soon is not read again; one unused for KEEP_JOBS jobs is deleted, and
when none is left the peft wrappers are removed too. Adapters live in the model's modules, so
they go with the model when another is loaded.

Anything wrong with one LoRA (missing, made for another family, a format diffusers can't read)
is a note to the artist and the job runs without it, as A1111 does. A name repeated in the prompt
is one LoRA at A1111's summed weight (studio.core.generation.lora_tags.merge_repeats), and a job
applies at most MAX_LORAS_PER_JOB of them. An image that comes out NaN names the LoRA,
embedding or VAE that most likely made it (studio.engine.nan_cause).
"""

from __future__ import annotations

import logging
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.generation.lora_tags import LoraTag, find_lora, inspect_lora, job_loras
from studio.core.models.model_library import lora_folders, model_folders
from studio.engine.families import ADAPTERS, adapter_for, denoiser_of
from studio.engine.nan_cause import InvalidImage, Suspects, embeddings_named, explain

KEEP_JOBS = 3  # jobs a LoRA stays loaded without being used
MAX_LOADED = 6  # at most this many stay loaded (a few hundred MB each for SDXL)
DENOISERS = {adapter.denoiser for adapter in ADAPTERS.values()}  # get a LoRA's UNet weight; the rest its TE weight

log = logging.getLogger(__name__)


def engine_lora_folders(engine) -> list[Path]:
    """The LoRA folders for the engine's jobs: the studio's own, those beside the artist's model
    folders (A1111's models/Lora, ComfyUI's models/loras), then any named directly."""
    folders = lora_folders(model_folders(list(getattr(engine, "library_dirs", None) or [])))
    for extra in getattr(engine, "lora_dirs", None) or []:
        path = Path(extra).expanduser()
        if path not in folders:
            folders.append(path)
    return folders


@dataclass
class _Adapter:
    name: str  # peft adapter name
    components: set[str]  # pipeline components that got layers ("unet", "text_encoder", ...)
    last_job: int = 0


@dataclass
class LoraCache:
    """The adapters loaded into one model's shared modules. Holds no reference to the model."""

    loaded: dict[tuple, _Adapter] = field(default_factory=dict)  # file identity -> adapter
    jobs: int = 0
    made: int = 0

    def adapter_for(self, pipe, path: Path) -> _Adapter:
        """The adapter for a file, loaded now unless it is already (same path, size and time)."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        adapter = self.loaded.get(key)
        if adapter is None:
            self.made += 1
            name = f"studio_lora_{self.made}"  # peft names become module keys: no dots, no user text
            before = _adapters_by_component(pipe)
            try:
                with warnings.catch_warnings():  # peft warns that a second adapter is a second adapter
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    pipe.load_lora_weights(str(path), adapter_name=name)
            except BaseException:
                self._discard(pipe, name)  # a half-loaded adapter (UNet done, text encoder failed)
                raise
            after = _adapters_by_component(pipe)
            components = {c for c, names in after.items() if name in names and name not in before.get(c, ())}
            if not components:
                self._discard(pipe, name)
                raise ValueError("none of its layers match this model")
            adapter = self.loaded[key] = _Adapter(name, components)
        adapter.last_job = self.jobs
        return adapter

    def evict(self, pipe, keep: set[str]) -> None:
        """Delete adapters unused for KEEP_JOBS jobs, and the oldest beyond MAX_LOADED."""
        by_age = sorted(self.loaded.items(), key=lambda item: item[1].last_job)
        drop = [k for k, a in by_age if a.name not in keep and self.jobs - a.last_job >= KEEP_JOBS]
        extra = len(self.loaded) - len(drop) - MAX_LOADED
        drop += [k for k, a in by_age if a.name not in keep and k not in drop][: max(0, extra)]
        if drop:
            _delete(pipe, [self.loaded.pop(k).name for k in drop])
        if drop and not self.loaded:
            pipe.unload_lora_weights()  # the wrappers go too: the modules are as loaded

    def _discard(self, pipe, name: str) -> None:
        _delete(pipe, [name])
        if not self.loaded:
            try:
                pipe.unload_lora_weights()
            except Exception:  # noqa: BLE001 - cleanup must not hide the first problem
                log.exception("could not remove LoRA layers")


_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # the model's denoiser -> LoraCache


def cache_for(model, create: bool = True) -> LoraCache | None:
    denoiser = denoiser_of(model.pipe)  # shared by all of the model's pipelines, gone with the model
    if denoiser not in _caches and create:
        _caches[denoiser] = LoraCache()
    return _caches.get(denoiser)


def _components(pipe):
    """The modules LoRA layers can go into, as the pipeline's LoRA loader names them."""
    for component in getattr(pipe, "_lora_loadable_modules", ()):
        module = getattr(pipe, component, None)
        if module is not None:
            yield component, module


def _adapters_by_component(pipe) -> dict[str, list[str]]:
    return {c: list(getattr(m, "peft_config", None) or {}) for c, m in _components(pipe)}


def _delete(pipe, names: list[str]) -> None:
    try:
        present = {n for names_ in _adapters_by_component(pipe).values() for n in names_}
        gone = [n for n in names if n in present]
        if gone:
            pipe.delete_adapters(gone)
    except Exception:  # noqa: BLE001 - cleanup must not hide the first problem
        log.exception("could not delete LoRA adapters %s", names)


def _activate(pipe, weights: dict[str, tuple[float, float]]) -> None:
    """Switch on exactly these adapters at these (text encoder, UNet) weights; every other
    loaded adapter is off. A component no active adapter touches is switched off entirely."""
    from diffusers.loaders.lora_base import (
        disable_lora_for_text_encoder,
        enable_lora_for_text_encoder,
        set_adapters_for_text_encoder,
    )

    for component, module in _components(pipe):
        present = set(getattr(module, "peft_config", None) or {})
        if not present:
            continue
        unet_like = component in DENOISERS
        chosen = {n: (w[1] if unet_like else w[0]) for n, w in weights.items() if n in present}
        chosen = {n: w for n, w in chosen.items() if w != 0}  # weight 0: not computed at all
        if unet_like:
            if chosen:
                module.enable_lora()
                module.set_adapters(list(chosen), list(chosen.values()))
            else:
                module.disable_lora()
        elif chosen:
            enable_lora_for_text_encoder(module)
            set_adapters_for_text_encoder(list(chosen), module, list(chosen.values()))
        else:
            disable_lora_for_text_encoder(module)
        for name, parameter in module.named_parameters():
            if "lora_" in name and parameter.requires_grad:
                parameter.requires_grad_(False)  # peft's set_adapter makes them trainable


def _deactivate(pipe) -> None:
    """Every adapter off: each wrapped layer returns its base layer's output, bit for bit."""
    from diffusers.loaders.lora_base import disable_lora_for_text_encoder

    for component, module in _components(pipe):
        if getattr(module, "peft_config", None):
            if component in DENOISERS:
                module.disable_lora()
            else:
                disable_lora_for_text_encoder(module)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, StudioError):
        return exc.message
    text = " ".join(str(exc).split())
    if "size mismatch" in text or "shape" in text.lower():
        return "its layers have other sizes than this model's"
    return (text[:160] + "…") if len(text) > 160 else (text or type(exc).__name__)


def _family_note(tag: LoraTag, path: Path, family) -> str:
    """Why a file can't go on a model of `family` ("" when it can)."""
    lora = inspect_lora(path)
    if lora.other:
        return f"LoRA {tag.name} is made for {lora.other} models, which the studio does not run; this image was made without it."
    if lora.family is not None and lora.family is not family:
        return f"LoRA {tag.name} is made for {lora.family.label} models; this image was made without it."
    return ""


def prepare_loras(engine, model, tags: list[LoraTag], used: list | None = None
                  ) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Load the tags' LoRAs into the model (cached); ({adapter: (te, unet) weight}, notes).
    `used` gets (name, file, weight) of each LoRA applied."""
    notes = [tag.note for tag in tags if tag.note]
    wanted = [tag for tag in tags if not tag.is_off]
    if not wanted:
        return {}, notes
    folders = engine_lora_folders(engine)
    cache = cache_for(model)
    weights: dict[str, tuple[float, float]] = {}
    for tag in wanted:
        path = find_lora(tag.name, folders)
        if path is None:
            where = ", ".join(str(f) for f in folders if f.is_dir()) or str(folders[0])
            notes.append(f"LoRA {tag.name} was not found (looked in {where}); this image was made without it.")
            continue
        try:
            note = _family_note(tag, path, model.info.family)
            if note:
                notes.append(note)
                continue
            adapter = cache.adapter_for(model.pipe, path)
        except Exception as exc:  # noqa: BLE001 - one bad LoRA never stops the job
            log.warning("LoRA %s not applied", path, exc_info=True)
            notes.append(f"LoRA {tag.name} could not be applied ({_reason(exc)}); this image was made without it.")
            continue
        te, unet = weights.get(adapter.name, (0.0, 0.0))
        weights[adapter.name] = (te + tag.weight, unet + tag.unet)  # two names of one file add up, as in A1111
        if used is not None:
            used.append((tag.name, path, tag.weight))
    return weights, notes


@contextmanager
def loras_for_job(engine, model, request):
    """Apply the prompt's LoRAs for the duration of the job; yields a note for the artist.

    On leaving, however the job ended, every adapter is switched off again; a NaN image leaves
    as an error naming its likeliest cause."""
    tags, cap_note = job_loras(request.prompt)
    if tags and not adapter_for(model.info.family).applies_loras:
        yield (f"LoRAs for {model.info.family.label} models are not applied yet in this version; "
               "this image was made without them.")
        return
    suspects = Suspects(vae=getattr(model, "vae_path", "") or "")
    cache = cache_for(model, create=bool(tags))
    if cache is None:  # no LoRA in this job and none ever loaded into this model
        with _naming_nan_causes(request, suspects):
            yield " ".join(tag.note for tag in tags if tag.note)
        return
    cache.jobs += 1
    weights: dict[str, tuple[float, float]] = {}
    notes: list[str] = [cap_note] if cap_note else []
    try:
        weights, tag_notes = prepare_loras(engine, model, tags, suspects.loras)
        notes += tag_notes
        cache.evict(model.pipe, keep=set(weights))
        if weights:
            _activate(model.pipe, weights)
    except Exception as exc:  # noqa: BLE001 - the job runs without LoRAs rather than not at all
        log.warning("LoRAs not applied", exc_info=True)
        weights = {}
        suspects.loras.clear()
        notes.append(f"The LoRAs could not be applied ({_reason(exc)}); this image was made without them.")
        _deactivate(model.pipe)
    try:
        with _naming_nan_causes(request, suspects):
            yield " ".join(notes)
    finally:
        if weights:
            _deactivate(model.pipe)


@contextmanager
def _naming_nan_causes(request, suspects: Suspects):
    try:
        yield
    except InvalidImage as error:
        suspects.embeddings = embeddings_named(request)
        raise explain(error, suspects) from error
