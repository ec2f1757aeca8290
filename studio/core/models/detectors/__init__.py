"""The registry of model families, as their files show them: one detector per family.

`inspect_model` (studio.core.models.model_detect) asks each detector in this order whether a
file or folder is of its family; the first that says yes reads it. Order matters only where
markers overlap: SD 1.x has none of its own and comes after the other UNet families; Flux,
whose files share no marker with theirs, is asked last (most files in a library are SD).
Adding a family: a module here with its Detector, one entry below, a member in Family.
"""

from __future__ import annotations

from studio.core.models.detectors.base import Detector
from studio.core.models.detectors.flux import FluxDetector
from studio.core.models.detectors.sd1 import SD1Detector
from studio.core.models.detectors.sd2 import SD2Detector
from studio.core.models.detectors.sdxl import SDXLDetector
from studio.core.models.family import Family

DETECTORS: tuple[Detector, ...] = (SDXLDetector(), SD2Detector(), SD1Detector(), FluxDetector())
_BY_FAMILY = {detector.family: detector for detector in DETECTORS}


def detector_for(family: Family) -> Detector:
    return _BY_FAMILY[family]


def supported_labels() -> str:
    """"SD 1.x, SD 2.x and SDXL": the families the studio runs, for messages."""
    labels = [detector.label for detector in sorted(DETECTORS, key=lambda d: list(Family).index(d.family))]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


__all__ = ["DETECTORS", "Detector", "detector_for", "supported_labels"]
