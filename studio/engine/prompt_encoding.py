"""The prompt as the pipeline gets it. (Being replaced by A1111 prompt syntax: emphasis, BREAK,
long prompts, clip skip, embeddings; until then the plain text goes to the pipeline.)"""

from __future__ import annotations


def prompt_arguments(model, pipe, request) -> dict:
    """Keyword arguments for the pipeline call that carry the prompt and negative prompt."""
    return {"prompt": request.prompt, "negative_prompt": request.negative_prompt or None}
