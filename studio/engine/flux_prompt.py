"""Flux's prompt: CLIP-L's pooled output of the whole prompt and T5-XXL's token sequence, with
A1111's syntax read the way Forge reads it for Flux.

- LoRA tags come out, prompt editing `[from:to:when]` and alternation `[a|b]` make a schedule of
  texts (the shared rules: studio.core.generation.prompt_schedule), and each distinct text is
  encoded once per job; the step callback swaps T5's sequence between steps.
- Emphasis `(word:1.2)` weights T5's output vectors, then the sequence is rescaled to its original
  mean: A1111's "Original" emphasis, which Forge applies to T5 for Flux (its T5TextProcessingEngine).
  CLIP-L's pooled vector is one vector for the whole prompt, so emphasis cannot reach it (as in
  Forge); it reads the prompt's words without the brackets, its first 77 tokens.
- T5 reads up to `max_sequence_length` tokens (512; [schnell] 256) padded to that length as
  diffusers pads them; longer prompts are cut, with a note. BREAK has no meaning for T5 and is read
  as a space. A prompt without weights gives exactly diffusers' own `encode_prompt` tensors.
- There is no negative prompt: guidance-distilled Flux takes none (Forge's "Distilled CFG").
The pooled vector of a scheduled prompt is its first text's (the pipeline reads it once per pass).
"""

from __future__ import annotations

import torch

from studio.core.generation.prompt_schedule import prompt_schedule
from studio.core.generation.prompt_syntax import extract_extra_networks, parse_prompt_attention
from studio.engine.prompt_encoding import EncodedPrompt, PromptSwitches

T5_END = 1  # T5's "</s>"
CLIP_LENGTH = 77


def _fragments(text: str) -> list[tuple[str, float]]:
    """(text, weight) pieces; BREAK (A1111's chunk break) is a space for T5."""
    return [(" " if piece == "BREAK" else piece, weight) for piece, weight in parse_prompt_attention(text)]


def t5_tokens(text: str, tokenizer, length: int) -> tuple[list[int], list[float], bool]:
    """(ids padded to `length`, per-token weights, whether the prompt was cut). Unweighted text is
    tokenized whole, exactly as diffusers does; weighted fragments one by one (Forge's way)."""
    fragments = _fragments(text)
    if all(weight == 1.0 for _, weight in fragments):
        ids = tokenizer("".join(piece for piece, _ in fragments), add_special_tokens=True, truncation=False)["input_ids"]
        weights = [1.0] * len(ids)
    else:
        ids, weights = [], []
        for piece, weight in fragments:
            piece_ids = tokenizer(piece, add_special_tokens=False, truncation=False)["input_ids"]
            ids += piece_ids
            weights += [weight] * len(piece_ids)
        ids.append(T5_END)
        weights.append(1.0)
    cut = len(ids) > length
    if cut:
        ids, weights = ids[: length - 1] + [T5_END], weights[: length - 1] + [1.0]
    pad = length - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, weights + [1.0] * pad, cut


def plain_text(text: str) -> str:
    """The prompt's words without A1111's brackets and weights (what CLIP-L's pooled vector reads)."""
    return "".join(" " if piece == "BREAK" else piece for piece, _ in parse_prompt_attention(text))


def _device(pipe):
    device = getattr(pipe, "_execution_device", None)
    return device if device is not None else pipe.device


def encode_text(pipe, text: str, length: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(T5 sequence [1, length, 4096], CLIP pooled [1, 768], cut) of one text."""
    device = _device(pipe)
    ids, weights, cut = t5_tokens(text, pipe.tokenizer_2, length)
    t5 = pipe.text_encoder_2
    with torch.no_grad():
        z = t5(torch.tensor([ids], device=device), output_hidden_states=False)[0]
        z = z.to(dtype=t5.dtype, device=device)
        if any(w != 1.0 for w in weights):
            original_mean = z.mean()
            z = z * torch.tensor(weights, dtype=z.dtype, device=device).view(1, -1, 1)
            z = z * (original_mean / z.mean())
        clip_ids = pipe.tokenizer(plain_text(text), padding="max_length", max_length=pipe.tokenizer_max_length,
                                  truncation=True, return_tensors="pt").input_ids
        pooled = pipe.text_encoder(clip_ids.to(device), output_hidden_states=False).pooler_output
        pooled = pooled.to(dtype=pipe.text_encoder.dtype, device=device)
    return z, pooled, cut


def encode_flux_request(model, pipe, request, steps: tuple[int, int | None] | None, length: int) -> EncodedPrompt:
    total, hires = steps if steps is not None else (getattr(request, "steps", 1), None)
    positive = prompt_schedule(extract_extra_networks(request.prompt)[0], total, hires)
    cache = getattr(model, "prompt_cache", None)
    cache = cache if cache is not None else {}
    notes: list[str] = []
    encoded = {}
    for entry in positive:
        key = ("flux", entry.text, length)
        if key not in cache:
            cache[key] = encode_text(pipe, entry.text, length)
        embeds, pooled, cut = cache[key]
        encoded[entry.text] = (embeds, pooled)
        if cut and not notes:
            notes.append(f"The prompt is longer than the {length} tokens Flux's T5 reads; the rest was left out.")
    if request.negative_prompt and request.negative_prompt.strip():
        notes.append("Flux takes no negative prompt (it is guidance-distilled); the negative prompt was not used.")
    first_pooled = encoded[positive[0].text][1]

    def arguments_for(text: str, negative_text: str | None) -> dict:
        return {"prompt_embeds": encoded[text][0], "pooled_prompt_embeds": first_pooled}

    switches = PromptSwitches(positive, [], arguments_for, ("prompt_embeds",))
    return EncodedPrompt(switches.arguments_at(0), 1, notes, {}, switches if len(positive) > 1 else None)
