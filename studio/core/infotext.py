"""A1111's `parameters` text ("infotext"): the lingua franca of SD image metadata.

Layout (A1111 modules/processing.py create_infotext):
    <prompt, may span lines>
    Negative prompt: <negative, may span lines>      (omitted when empty)
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...
Values holding ',', ':' or a newline are JSON-quoted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from studio import __version__
from studio.core.request import GenerationRequest, InpaintArea, Mode

# A1111's own pattern (modules/infotext_utils.py).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEGATIVE = "Negative prompt:"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",\n:") else value


def format_infotext(request: GenerationRequest) -> str:
    params: dict[str, str] = {
        "Steps": str(request.steps),
        "Sampler": request.sampler,
        "CFG scale": f"{request.guidance:g}",
        "Seed": str(request.seed),
        "Size": f"{request.width}x{request.height}",
    }
    if request.model:
        params["Model"] = Path(request.model).name or request.model
    if request.mode is not Mode.TXT2IMG:
        params["Denoising strength"] = f"{request.strength:g}"
    if request.mode is Mode.INPAINT:  # A1111's own keys and wording
        params["Mask blur"] = str(request.mask_blur)
        params["Masked content"] = request.masked_content.value.replace("_", " ")
        if request.inpaint_area is InpaintArea.ONLY_MASKED:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = str(request.inpaint_padding)
    params["Version"] = f"DiffusionStudio {__version__}"
    negative = f"\n{_NEGATIVE} {request.negative_prompt}" if request.negative_prompt else ""
    last = ", ".join(f"{key}: {_quote(value)}" for key, value in params.items())
    return f"{request.prompt}{negative}\n{last}".strip()


@dataclass
class Infotext:
    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_infotext(text: str) -> Infotext:
    """Parse A1111 parameters text. Never raises on odd input; unknown keys stay in params."""
    lines = text.strip().split("\n")
    params: dict[str, str] = {}
    if lines and len(_PARAM.findall(lines[-1])) >= 3:
        for key, value in _PARAM.findall(lines.pop()):
            value = value.strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                try:
                    value = str(json.loads(value))
                except json.JSONDecodeError:
                    pass
            params[key.strip()] = value
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.strip().startswith(_NEGATIVE):
            in_negative = True
            line = line.strip()[len(_NEGATIVE):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return Infotext("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), params)
