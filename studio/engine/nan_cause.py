"""Which file most likely made an invalid (NaN) image, so the message names it.

An image is NaN either from the denoiser's latents (the UNet, the prompt's vectors: the model,
a LoRA, an embedding) or from the decode alone (the VAE). A file that itself holds NaN or
infinite numbers is the cause for certain; otherwise the likeliest is named: a LoRA in use
(they are trained apart from the model and often overcooked), then an embedding, then the
model. Only read when an image failed: it never costs a job that worked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import ErrorKind, StudioError
from studio.core.generation.prompt_syntax import extract_extra_networks

log = logging.getLogger(__name__)
MESSAGE = "The model produced an invalid (NaN) image."


class InvalidImage(StudioError):
    """A NaN image; `stage` says where it first showed: "latents" (the denoiser) or "decode" (the VAE)."""

    def __init__(self, stage: str):
        super().__init__(ErrorKind.INTERNAL, MESSAGE,
                         "The model file may be damaged, or the settings extreme (try a lower guidance or another sampler).")
        self.stage = stage


@dataclass
class Suspects:
    """The files one job used besides the model."""

    loras: list[tuple[str, Path, float]] = field(default_factory=list)  # (tag name, file, weight)
    embeddings: list[tuple[str, Path]] = field(default_factory=list)
    vae: str = ""  # a VAE file chosen instead of the model's own


def holds_non_finite(path: Path) -> bool:
    """Whether a .safetensors file holds a NaN or infinite number (False when unreadable)."""
    try:
        import torch
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    return True
    except Exception:  # noqa: BLE001 - only a guess at the cause: never a second failure
        log.warning("could not check %s for NaN", path, exc_info=True)
    return False


def embeddings_named(request) -> list[tuple[str, Path]]:
    """The embedding files the prompts name as words (A1111's matching, as for TI hashes)."""
    from studio.core.models.model_library import embedding_folders, folders_beside_model, safetensors_files

    text = "\n".join(extract_extra_networks(t)[0] for t in (request.prompt, request.negative_prompt))
    found: dict[str, Path] = {}
    for folder in embedding_folders(folders_beside_model(request.model)):
        for path in safetensors_files(Path(folder)):
            if path.stem not in found and re.search(rf"(?<![\w-]){re.escape(path.stem)}(?![\w-])", text, re.I):
                found[path.stem] = path
    return list(found.items())


def explain(error: InvalidImage, suspects: Suspects) -> StudioError:
    """The invalid-image error naming its likeliest cause."""
    if error.stage == "decode":
        if suspects.vae:
            return _blame(f"The VAE {Path(suspects.vae).name} produced an invalid (NaN) image.",
                          "Choose another VAE in the VAE picker (the file may be damaged or made for another model).")
        return _blame("The model's own VAE produced an invalid (NaN) image.",
                      "Choose a separate VAE for this model in the VAE picker.")
    for name, path, _ in suspects.loras:
        if holds_non_finite(path):
            return _blame(f"The LoRA {name} holds invalid (NaN) numbers, so the image came out invalid.",
                          "Leave it out of the prompt; download it again from where it came from.")
    for name, path in suspects.embeddings:
        if holds_non_finite(path):
            return _blame(f"The embedding {name} holds invalid (NaN) numbers, so the image came out invalid.",
                          "Leave its name out of the prompt; download it again from where it came from.")
    if suspects.loras:
        names = ", ".join(f"{name} (weight {weight:g})" for name, _, weight in suspects.loras)
        return _blame(f"The image came out invalid (NaN) with the LoRA{'s' if len(suspects.loras) > 1 else ''} {names}.",
                      "Lower its weight or leave it out; it may be made for another model or damaged.")
    if suspects.embeddings:
        names = ", ".join(name for name, _ in suspects.embeddings)
        return _blame(f"The image came out invalid (NaN) with the embedding{'s' if len(suspects.embeddings) > 1 else ''} "
                      f"{names}.", "Leave it out of the prompt; it may be made for another model or damaged.")
    return error


def _blame(message: str, hint: str) -> StudioError:
    return StudioError(ErrorKind.INTERNAL, message, hint)
