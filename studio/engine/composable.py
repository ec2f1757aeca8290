"""A1111's composable diffusion: `a cat AND a dog :0.8` denoises with both prompts, weighted.

A1111 (modules/prompt_parser.py, get_multicond_prompt_list; sd_samplers_cfg_denoiser.py,
combine_denoised): once the extra-network tags are out, the prompt is split on the word AND and
each part may end in `:weight` (1 when it does not; negative weights push away). Every distinct
part is a prompt of its own, with its own emphasis, BREAK chunks and editing schedule. At each
step the denoiser runs for the negative prompt (never split) and for every part, and

    denoised = uncond + sum_i weight_i * cfg * (cond_i - uncond)

Parts of different lengths are stacked by repeating the shorter ones' last vector (A1111's
stack_conds); then prompt and negative are padded with empty chunks to one length, as a plain
prompt is here.

How, without forking the pipelines: the pipeline gets the first part and the negative as usual
(they set its shapes and dtype), and for the call its denoiser's forward is wrapped. Each time
the pipeline asks for its [uncond, cond] batch, the wrapper runs the negative and every part at
that step's conditioning, in calls of the pipeline's own batch size (a plain prompt's memory),
combines them with A1111's formula and hands back the result as both halves of the batch, so
the pipeline's own `uncond + g * (cond - uncond)` leaves it as it is. The negative and the first
part run in the very call a plain prompt makes, and the formula adds in the pipeline's order:
`a AND b :0` gives exactly the pixels of `a`. Without CFG (guidance 1 or less) the parts combine
as A1111 combines them at CFG scale 1. A prompt without AND never comes here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from studio.core.generation.prompt_schedule import ScheduleEntry, and_parts, entry_index, prompt_schedule
from studio.core.generation.prompt_syntax import extract_extra_networks
from studio.engine.families import adapter_for, denoiser_of
from studio.engine.prompt_encoding import (
    _TEXT,
    EncodedPrompt,
    _chunks,
    _encode_text,
    _execution_device,
    _lookup,
    prompt_encoding,
    request_key,
)

Conditioning = tuple[torch.Tensor, "torch.Tensor | None"]  # (embeddings [1, tokens, width], pooled [1, n] or None)


@dataclass
class Composition:
    """The conditionings of a composed prompt, step by step."""

    weights: list[float]  # one per AND part, in order (a repeated part keeps each weight)
    parts: list[list[ScheduleEntry]]  # each part's schedule, in order
    part_conditionings: list[list[Conditioning]]  # one per schedule entry
    negative: list[ScheduleEntry]
    negative_conditionings: list[Conditioning]

    def at(self, step: int) -> tuple[Conditioning, list[Conditioning]]:
        """(the negative's, each part's) conditioning for denoiser call `step` of the pass."""
        negative = self.negative_conditionings[entry_index(self.negative, step)]
        parts = [conds[entry_index(schedule, step)] for schedule, conds in zip(self.parts, self.part_conditionings,
                                                                              strict=True)]
        return negative, parts


@dataclass
class ComposedPrompt(EncodedPrompt):
    composition: Composition | None = None  # the parts the denoiser combines


def prompt_for_pass(model, pipe, request, steps: tuple[int, int | None]) -> EncodedPrompt:
    """The request's prompts for a pass (studio.engine.prompt_encoding.prompt_encoding), composed
    from its AND parts when it has them and the family combines them."""
    parts = and_parts(extract_extra_networks(request.prompt)[0])
    if len(parts) < 2:
        return prompt_encoding(model, pipe, request, steps)
    adapter = adapter_for(model.info.family)
    cache = model.prompt_cache
    key = request_key(request)
    if not adapter.composable_prompts:
        joined = replace(request, prompt=", ".join(text.strip() for text, _ in parts))
        encoded = prompt_encoding(model, pipe, joined, steps)
        note = (f"{model.info.family.label} models cannot combine prompts joined by AND, so its parts were read "
                "as one prompt; write it without AND to silence this note.")
        cache[key] = replace(encoded, notes=[*encoded.notes, note])  # what prompt_notes reads
        return cache[key]
    full = (*key, "AND", steps)  # once per job and pass, as plain prompts
    if full not in cache:
        cache[full] = _encode_parts(model, pipe, request, steps, parts)
    cache[key] = cache[full]  # the latest, for prompt_notes
    return cache[full]


def _encode_parts(model, pipe, request, steps: tuple[int, int | None], parts: list[tuple[str, float]]) -> ComposedPrompt:
    adapter = adapter_for(model.info.family)
    encoders = adapter.text_encoders(pipe)
    lookup = _lookup(model, encoders)
    total, hires = steps
    schedules = {text: prompt_schedule(text, total, hires) for text, _ in parts}  # each distinct part once
    negative = prompt_schedule(extract_extra_networks(request.negative_prompt or "")[0], total, hires)
    zero_negative = all(not entry.text for entry in negative) and adapter.zero_empty_negative(pipe)
    texts = [entry.text for schedule in schedules.values() for entry in schedule]
    negative_texts = [] if zero_negative else [entry.text for entry in negative]
    chunked = {text: [_chunks(text, encoder, lookup) for encoder in encoders]
               for text in dict.fromkeys([*texts, *negative_texts, ""])}

    def chunk_count(of: list[str]) -> int:
        return max(len(chunks) for text in of for chunks in chunked[text])

    own_counts = {part: chunk_count([entry.text for entry in schedule]) for part, schedule in schedules.items()}
    stacked = max(own_counts.values())  # the parts' common length (A1111 encodes each part's schedule as one batch)
    width = max(stacked, chunk_count(negative_texts) if negative_texts else 1)  # with the negative's
    device = _execution_device(pipe)
    clip_skip = adapter.clip_skip(request.clip_skip)
    cache = model.prompt_cache

    def encoded(text: str, count: int) -> Conditioning:
        key = (_TEXT, text, count, clip_skip)  # shared with plain prompts' texts of this job
        if key not in cache:
            cache[key] = _encode_text(chunked[text], encoders, count, clip_skip, device)
        return cache[key]

    with torch.no_grad():
        empty = encoded("", 1)[0]  # one empty chunk: the padding to the negative's length

        def part_conditioning(text: str, count: int) -> Conditioning:
            embeds, pooled = encoded(text, count)
            tokens = embeds.shape[1] // count
            missing = (stacked - count) * tokens
            if missing:  # A1111's stack_conds: the last vector, repeated
                embeds = torch.cat([embeds, embeds[:, -1:].repeat(1, missing, 1)], dim=1)
            if width > stacked:
                embeds = torch.cat([embeds, empty.repeat(1, width - stacked, 1)], dim=1)
            return embeds, pooled

        part_conditionings = {part: [part_conditioning(entry.text, own_counts[part]) for entry in schedule]
                              for part, schedule in schedules.items()}
        if zero_negative:
            embeds, pooled = part_conditionings[parts[0][0]][0]
            zeros = (torch.zeros_like(embeds), None if pooled is None else torch.zeros_like(pooled))
            negative_conditionings = [zeros] * len(negative)
        else:
            negative_conditionings = [encoded(entry.text, width) for entry in negative]
    composition = Composition(
        weights=[weight for _, weight in parts],
        parts=[schedules[text] for text, _ in parts],
        part_conditionings=[part_conditionings[text] for text, _ in parts],
        negative=negative,
        negative_conditionings=negative_conditionings,
    )
    # The pipeline's own arguments: the first part and the negative at step 0 (shapes and dtype).
    (negative_embeds, negative_pooled), (first, *_) = composition.at(0)
    arguments = {"prompt_embeds": first[0]}
    if first[1] is not None:
        arguments["pooled_prompt_embeds"] = first[1]
    if request.guidance > 1.0:
        arguments["negative_prompt_embeds"] = negative_embeds
        if negative_pooled is not None:
            arguments["negative_pooled_prompt_embeds"] = negative_pooled
    return ComposedPrompt(arguments, width, lookup.notes, dict(lookup.used), None, composition)


def compose_denoiser(pipe, encoded: EncodedPrompt) -> Callable[[], None]:
    """Wrap the pipeline's denoiser for a composed prompt; returns what undoes it (a no-op for
    every other prompt). The wrapper is an instance `forward`, inside the module's own hooks
    and around accelerate's offload hook, which lives there too."""
    composition = getattr(encoded, "composition", None)
    if composition is None:
        return lambda: None
    denoiser = denoiser_of(pipe)
    own = vars(denoiser).get("forward")  # accelerate's offload hook, or None
    wrapper = ComposedForward(pipe, denoiser.forward, composition)
    denoiser.forward = wrapper

    def restore() -> None:
        if vars(denoiser).get("forward") is not wrapper:
            return  # the offload hooks were set up anew meanwhile (the pipeline's end does that)
        if own is not None:
            denoiser.forward = own
        else:
            del denoiser.forward

    return restore


class ComposedForward:
    """The denoiser's forward for a composed prompt: A1111's combine_denoised, per call."""

    def __init__(self, pipe, forward, composition: Composition):
        self.pipe, self.forward, self.composition = pipe, forward, composition
        self.calls = 0  # denoiser calls in this pass: A1111's step count, the schedules' index

    def __call__(self, sample: torch.Tensor, timestep, *args, **kwargs):
        step = self.calls
        self.calls += 1
        if args:  # (encoder_hidden_states,): diffusers' pipelines pass it by name
            (kwargs["encoder_hidden_states"],) = args
        return_dict = kwargs.pop("return_dict", True)
        context = kwargs.pop("encoder_hidden_states")
        guided = bool(getattr(self.pipe, "do_classifier_free_guidance", False))
        rows = sample.shape[0]
        batch = rows // 2 if guided else rows  # the pipeline's images

        def half(value: torch.Tensor, which: int) -> torch.Tensor:
            """The pipeline's uncond (0) or cond (1) rows; without CFG all rows are cond."""
            if not guided:
                return value
            return value[:batch] if which == 0 else value[batch:]

        def per_row(value) -> bool:
            return isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == rows

        negative, parts = self.composition.at(step)
        # (conditioning, whose rows of the pipeline's batch it denoises): the negative, then each part
        blocks = [(negative, 0)] + [(part, 1) for part in parts]
        outputs = []
        for start in range(0, len(blocks), 2):  # the pipeline's own batch size per call
            group = blocks[start:start + 2]

            def rows_of(value, group=group):
                return torch.cat([half(value, which) for _, which in group]) if per_row(value) else value

            def conditioning(index: int, like: torch.Tensor, group=group) -> torch.Tensor:
                tensors = [cond[index].to(device=like.device, dtype=like.dtype) for cond, _ in group]
                return torch.cat([tensor.expand(batch, *tensor.shape[1:]) for tensor in tensors])

            call = {name: rows_of(value) for name, value in kwargs.items() if name != "added_cond_kwargs"}
            added = kwargs.get("added_cond_kwargs")
            if added is not None:
                added = {name: rows_of(value) for name, value in added.items()}
                if "text_embeds" in added:  # SDXL: each part's own pooled embedding
                    added["text_embeds"] = conditioning(1, added["text_embeds"])
                call["added_cond_kwargs"] = added
            call["encoder_hidden_states"] = conditioning(0, context)
            output = self.forward(rows_of(sample), rows_of(timestep), return_dict=False, **call)[0]
            outputs.extend(output.split(batch))
        uncond, conds = outputs[0], outputs[1:]
        scale = float(self.pipe.guidance_scale) if guided else 1.0
        denoised = uncond.clone()
        for weight, cond in zip(self.composition.weights, conds, strict=True):
            denoised += (cond - uncond) * (weight * scale)  # A1111's order: the pipeline's, for one part
        result = torch.cat([denoised, denoised]) if guided else denoised  # the pipeline's CFG keeps it
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=result)
        return (result,)
