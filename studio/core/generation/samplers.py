"""Sampler names as artists know them (A1111's names). The engine maps them to diffusers."""

SAMPLER_NAMES: tuple[str, ...] = (
    "Euler",
    "Euler a",
    "Heun",
    "LMS",
    "LMS Karras",
    "DDIM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Karras",
    "DPM++ SDE Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "UniPC",
    "LCM",
)
DEFAULT_SAMPLER = "DPM++ 2M Karras"


def canonical_sampler(name: str) -> str:
    """The sampler's canonical spelling, matched case-insensitively; ValueError if unknown."""
    wanted = " ".join(name.split()).casefold()
    for known in SAMPLER_NAMES:
        if known.casefold() == wanted:
            return known
    raise ValueError(f"Unknown sampler {name!r}. Choose one of: {', '.join(SAMPLER_NAMES)}.")
