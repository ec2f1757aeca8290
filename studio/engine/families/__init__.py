"""The registry of model family adapters: `adapter_for(family)` is how the engine asks.

Adding a family: its module here (an adapter class, see base.FamilyAdapter), an entry in
ADAPTERS, its detector in studio.core.models.detectors, its configs in resources/model-configs.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.models.family import Family
from studio.engine.families.base import FamilyAdapter, LatentFormat, TextEncoder, configs_root
from studio.engine.families.flux import FluxAdapter
from studio.engine.families.sd1 import SD1Adapter
from studio.engine.families.sd2 import SD2Adapter
from studio.engine.families.sdxl import SDXLAdapter

ADAPTERS: dict[Family, FamilyAdapter] = {adapter.family: adapter for adapter in (SD1Adapter(), SD2Adapter(), SDXLAdapter(),
                                                                          FluxAdapter())}


def adapter_for(family: Family) -> FamilyAdapter:
    return ADAPTERS[family]


def config_dir(name: str) -> Path:
    """A shipped diffusers config folder (resources/model-configs/<name>); KeyError for a name
    no family ships. Where the values come from: resources/model-configs/README.md."""
    known = [config for adapter in ADAPTERS.values() for config in adapter.configs]
    if name not in known:
        raise KeyError(f"no shipped model configs named {name!r}; known: {', '.join(known)}")
    return configs_root() / name


def denoiser_of(pipe):
    """The pipeline's denoising model, whatever its family calls it (unet, transformer)."""
    for name in dict.fromkeys(adapter.denoiser for adapter in ADAPTERS.values()):
        module = getattr(pipe, name, None)
        if module is not None:
            return module
    raise AttributeError(f"{type(pipe).__name__} has no denoiser")


def latent_formats() -> list[LatentFormat]:
    """Every family's latent format, once each (SD 1.x and SD 2.x share theirs)."""
    return list(dict.fromkeys(adapter.latent for adapter in ADAPTERS.values()))


__all__ = ["ADAPTERS", "FamilyAdapter", "LatentFormat", "TextEncoder", "adapter_for", "config_dir", "denoiser_of",
           "latent_formats"]
