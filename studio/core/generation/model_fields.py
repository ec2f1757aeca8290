"""Which of the panel's fields a model reads, applied to a request: a field the model ignores
never travels in it (nor into the image's metadata), so nothing the artist set is silently
dropped on the way; the panel says which fields are not used (studio.ui.generation_panel).

The settings keep the artist's values: a negative prompt typed for an SD model stays in its
box while a Flux model is chosen, and is sent again once an SD model is.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

from studio.core.generation.fields import request_default
from studio.core.generation.request import GenerationRequest
from studio.core.models.family import PanelFacts

NO_GUIDANCE = 1.0  # what a request says for a model without guidance (Forge writes "CFG scale: 1")


def fit_request(request: GenerationRequest, facts: PanelFacts) -> GenerationRequest:
    """`request` without the fields the model does not read: no negative prompt without a
    negative pass, clip skip 1 where there is no CLIP layer to skip, guidance 1 for a model
    that takes none (Flux schnell)."""
    changes: dict = {}
    if not facts.negative_prompt and request.negative_prompt:
        changes["negative_prompt"] = ""
    if not facts.clip_skip and request.clip_skip != request_default("clip_skip"):
        changes["clip_skip"] = request_default("clip_skip")
    if not facts.guidance and request.guidance != NO_GUIDANCE:
        changes["guidance"] = NO_GUIDANCE
    return dataclasses.replace(request, **changes) if changes else request


def model_panel_facts(model: str | Path) -> PanelFacts:
    """The panel facts of the model at `model` (reads its header or configs, once per version
    of the file: call off the GUI thread); the SD families' (every field) when it cannot be read."""
    if not model:
        return PanelFacts()
    try:
        info = Path(model).expanduser().stat()
    except (OSError, ValueError):
        return PanelFacts()
    return _facts(str(model), info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=64)
def _facts(model: str, size: int, mtime_ns: int) -> PanelFacts:
    from studio.core.errors import StudioError
    from studio.core.models.model_detect import inspect_model

    try:
        return inspect_model(model).panel
    except (StudioError, OSError, ValueError, RecursionError, KeyError):
        return PanelFacts()
