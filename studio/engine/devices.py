"""Choosing where the model runs: CUDA, else Apple MPS, else CPU; half precision on GPUs."""

from __future__ import annotations

import torch

from studio.core.errors import ErrorKind, StudioError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.insert(0, "mps")
    return found


def resolve_device(choice: str = "auto") -> tuple[str, torch.dtype]:
    """(device, dtype) for a user's choice. fp16 where the device runs it well; fp32 on CPU."""
    choice = (choice or "auto").lower()
    if choice not in DEVICE_CHOICES:
        raise StudioError(ErrorKind.BAD_INPUT, f"Unknown device {choice!r}.", f"Use one of: {', '.join(DEVICE_CHOICES)}.")
    available = available_devices()
    if choice == "auto":
        choice = available[0]
    elif choice not in available:
        raise StudioError(
            ErrorKind.DEVICE,
            f"The {choice.upper()} device is not available on this machine.",
            f"Available: {', '.join(available)}.",
        )
    return choice, (torch.float32 if choice == "cpu" else torch.float16)
