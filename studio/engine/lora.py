"""LoRAs named in the prompt (<lora:NAME:WEIGHT>), applied for one job. (Being built.)"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def loras_for_job(engine, model, request):
    """Apply the request's LoRAs for the duration of the job; yields a note for the artist."""
    yield ""
