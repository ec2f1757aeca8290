"""The prompt as the pipeline gets it: A1111's weighted, chunked encoding, done here.

A1111 (modules/sd_hijack_clip.py, FrozenCLIPEmbedderWithCustomWordsBase) reads a prompt thus,
and so do we:
1. extra-network tags (`<lora:...>`) come out; the rest is parsed into weighted fragments and
   BREAKs (studio.core.generation.prompt_syntax);
2. fragments are tokenized without start/end tokens and packed into chunks of 75 tokens (a full
   chunk ends after its last comma when that is within 20 tokens; BREAK ends one early);
   an embedding's name becomes its vectors, which take token slots like words;
3. each chunk is encoded as [start] + 75 + [end], padded with the tokenizer's pad token after the
   first end token (SD 2.x and SDXL's second encoder pad with "!", id 0);
4. the hidden state per clip skip (the family's rule: studio.engine.families, clip_skip): SD 1.x
   and SD 2.x take `hidden_states[-clip_skip]` through the final layer norm (clip skip 1 is the
   last layer; diffusers' SD 2.x encoder already ends at OpenCLIP's penultimate layer, which is
   the layer A1111 uses); SDXL's encoders (`penultimate`) take `hidden_states[-(clip_skip + 1)]`,
   no layer norm, as its pipeline does;
5. each token's vector is multiplied by its weight, and the chunk is rescaled so its mean is what
   it was (A1111's "Original" emphasis), then the chunks are joined along the sequence;
6. prompt and negative prompt are padded with empty chunks to the same count (A1111's "pad
   prompt/negative prompt to be same length"; diffusers needs one shape for both).
SDXL's pooled embedding is text_encoder_2's of the first chunk (A1111's choice); an empty SDXL
negative prompt is zeros when the model says `force_zeros_for_empty_prompt` (diffusers' and
A1111's behaviour).

A plain prompt under 75 tokens at clip skip 1 gives exactly the tensors of the pipeline's own
`encode_prompt`, so such prompts keep their pixels. Nothing is cached between jobs.

Prompt editing `[from:to:when]` and alternation `[a|b]` (studio.core.generation.prompt_schedule): after the
extra-network tags come out (A1111's order), each prompt becomes a schedule of texts; every
distinct text is encoded once per job (the cache), all at one chunk count (A1111 encodes a
schedule's texts as one batch, padded alike, and pads prompt and negative to each other), and
`PromptSwitches` hands the pipeline the next step's tensors from its step callback. A prompt
without them is a schedule of one entry, itself, and takes exactly the path it always took.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.core.generation.prompt_schedule import ScheduleEntry, entry_index, prompt_schedule
from studio.core.generation.prompt_syntax import (
    CHUNK_LENGTH,
    PromptChunk,
    extract_extra_networks,
    make_chunks,
    parse_prompt_attention,
)
from studio.engine.embeddings import Embedding, EmbeddingLookup, embedding_files
from studio.engine.families import adapter_for
from studio.engine.families.base import TextEncoder

PLACEHOLDER_ID = 0  # the token under an embedding's vectors (A1111 uses 0 too); replaced before use
_TEXT = object()  # marks a text's tensors in the job's prompt cache (no request key can equal it)


@dataclass
class EncodedPrompt:
    """The pipeline's prompt arguments, and what the artist should know about them."""

    arguments: dict
    chunks: int = 1
    notes: list[str] = field(default_factory=list)
    embeddings: dict[str, Embedding] = field(default_factory=dict)  # used, by name (A1111's "TI hashes")
    switches: PromptSwitches | None = None  # the prompt changes between steps (A1111's prompt editing)


class PromptSwitches:
    """The prompt tensors of each denoising step, for a prompt or negative prompt that edits or
    alternates. The pipeline starts with step 0's (EncodedPrompt.arguments); after step i the
    step callback swaps in step i + 1's where they differ. Step numbers are the pipeline's loop
    index within one pass, which is A1111's denoiser call count (both start at 0 in each pass,
    img2img's included, and count a second-order sampler's two calls per step)."""

    def __init__(self, positive: list[ScheduleEntry], negative: list[ScheduleEntry], arguments_for,
                 tensor_inputs: tuple[str, ...] = ("prompt_embeds",)):
        self.positive, self.negative = positive, negative
        self._arguments_for = arguments_for  # (prompt text, negative text or None) -> arguments
        self.tensor_inputs = list(tensor_inputs)  # what the step callback must see and may replace

    def texts_at(self, step: int) -> tuple[str, str | None]:
        negative = self.negative[entry_index(self.negative, step)].text if self.negative else None
        return self.positive[entry_index(self.positive, step)].text, negative

    def arguments_at(self, step: int) -> dict:
        return self._arguments_for(*self.texts_at(step))

    def step_end(self, pipeline, step_index: int, tensors: dict) -> dict:
        """Inside the loop the pipelines hold `prompt_embeds` as cat([negative, prompt]) under
        classifier-free guidance (SDXL's pooled embeddings likewise as `add_text_embeds`), and
        read what the callback returns from the next step on."""
        following = step_index + 1
        if self.texts_at(following) == self.texts_at(step_index):
            return tensors
        arguments = self.arguments_at(following)
        guided = bool(getattr(pipeline, "do_classifier_free_guidance", False))
        pairs = [("prompt_embeds", "prompt_embeds", "negative_prompt_embeds"),
                 ("add_text_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")]
        for name, positive, negative in pairs:
            if name not in tensors:
                continue
            value = arguments[positive]
            if guided:
                value = torch.cat([arguments[negative], value])
            current = tensors[name]
            tensors[name] = value.to(device=current.device, dtype=current.dtype)
        return tensors


def _cached(model, pipe, request, steps: tuple[int, int | None] | None = None) -> EncodedPrompt:
    """The request's encoded prompts, once per job: the prompt, LoRAs and embeddings are the same
    for every image of a batch and for the hires pass (the engine clears the cache per job).
    Under CPU offload each encoding would move the text encoders onto the GPU and back.
    `steps`: (sampler steps of the pass, hires steps or None), for prompt editing."""
    cache = getattr(model, "prompt_cache", None)
    key = request_key(request)
    if cache is None:
        return encode_request(model, pipe, request, steps)
    full = (*key, _pass_texts(request, steps))  # plain prompts: one key for every pass
    if full not in cache:
        cache[full] = encode_request(model, pipe, request, steps)
    cache[key] = cache[full]  # the latest, for prompt_notes
    return cache[full]


def request_key(request) -> tuple:
    """What a request's encoded prompts depend on (with its pass's steps): the job's cache key."""
    return (request.prompt, request.negative_prompt, request.clip_skip, request.guidance > 1.0)


def _pass_texts(request, steps: tuple[int, int | None] | None) -> tuple | None:
    """What the prompt and negative resolve to in this pass (their schedules), or None when
    they are the texts as typed at every step. Keyed on this, not on whether the pass edits:
    `[a:b:20]` at 20 steps is "a" for the whole first pass and "b" for the whole hires pass."""
    if steps is None:
        return None
    texts = [extract_extra_networks(text)[0] for text in (request.prompt, request.negative_prompt or "")]
    schedules = tuple(tuple(prompt_schedule(text, *steps)) for text in texts)
    if all(len(entries) == 1 and entries[0].text == text for entries, text in zip(schedules, texts, strict=True)):
        return None
    return schedules


def prompt_encoding(model, pipe, request, steps: tuple[int, int | None]) -> EncodedPrompt:
    """The request's prompts for a pass of `steps` = (sampler steps, hires steps or None): the
    first step's arguments and, where the prompt edits or alternates, its switches."""
    return _cached(model, pipe, request, steps)


def prompt_notes(model, request) -> list[str]:
    """Notes about the request's prompts for the artist (embeddings left out and why)."""
    cache = getattr(model, "prompt_cache", None)
    key = request_key(request)
    if cache is not None and key in cache:
        return list(cache[key].notes)
    return list(_cached(model, model.pipe, request).notes)


def encode_request(model, pipe, request, steps: tuple[int, int | None] | None = None) -> EncodedPrompt:
    adapter = adapter_for(model.info.family)
    own = adapter.encode_request(model, pipe, request, steps)  # a family with its own text encoders' rules
    if own is not None:
        return own
    encoders = adapter.text_encoders(pipe)
    lookup = _lookup(model, encoders)
    cfg = request.guidance > 1.0  # the pipelines' do_classifier_free_guidance
    total, hires = steps if steps is not None else (getattr(request, "steps", 1), None)
    # Tags out first, then the schedule (A1111's order: extra_networks.parse_prompts, then setup_conds).
    positive = prompt_schedule(extract_extra_networks(request.prompt)[0], total, hires)
    negative = prompt_schedule(extract_extra_networks(request.negative_prompt or "")[0], total, hires)
    # A negative that is empty at every step is zeros where the family says so (SDXL; A1111: all
    # texts of its batch empty).
    zero_negative = all(not entry.text for entry in negative) and adapter.zero_empty_negative(pipe)
    # Chunks per encoder, for each distinct text of the prompt and (when the negative is used and
    # encoded) of the negative, in that order (the order of the notes).
    texts = [entry.text for entry in positive] + ([entry.text for entry in negative] if cfg and not zero_negative else [])
    texts = list(dict.fromkeys(texts))
    chunked = {text: [_chunks(text, encoder, lookup) for encoder in encoders] for text in texts}
    count = max(len(chunks) for per_text in chunked.values() for chunks in per_text)
    device = _execution_device(pipe)
    clip_skip = adapter.clip_skip(request.clip_skip)  # A1111's rule: SD 1.x only
    cache = getattr(model, "prompt_cache", None)
    cache = cache if cache is not None else {}
    encoded = {}
    with torch.no_grad():
        for text in texts:
            key = (_TEXT, text, count, clip_skip)  # each distinct text once per job
            if key not in cache:
                cache[key] = _encode_text(chunked[text], encoders, count, clip_skip, device)
            encoded[text] = cache[key]

    def arguments_for(text: str, negative_text: str | None) -> dict:
        embeds, pooled = encoded[text]
        arguments = {"prompt_embeds": embeds}
        if pooled is not None:
            arguments["pooled_prompt_embeds"] = pooled
        if cfg:
            if zero_negative:
                negative, negative_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
            else:
                negative, negative_pooled = encoded[negative_text]
            arguments["negative_prompt_embeds"] = negative
            if pooled is not None:
                arguments["negative_pooled_prompt_embeds"] = negative_pooled
        return arguments

    switches = PromptSwitches(positive, negative if cfg else [], arguments_for, adapter.prompt_tensor_inputs)
    arguments = switches.arguments_at(0)
    edits = len(positive) > 1 or (cfg and len(negative) > 1)
    return EncodedPrompt(arguments, count, lookup.notes, dict(lookup.used), switches if edits else None)


def _lookup(model, encoders: list[TextEncoder]) -> EmbeddingLookup:
    files = embedding_files(model.path)
    widths = {encoder.key: encoder.width for encoder in encoders}
    return EmbeddingLookup(files, encoders[0].tokenizer, model.info.family.label, widths, chunk_length(encoders[0]))


def _chunks(text: str, encoder: TextEncoder, lookup: EmbeddingLookup) -> list[PromptChunk]:
    """`text` without its extra-network tags (taken out once, before the schedule)."""
    fragments = parse_prompt_attention(text)
    tokenizer = encoder.tokenizer
    pieces = [piece for piece, _ in fragments]
    token_lists = tokenizer(pieces, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    comma = _comma_id(tokenizer)
    chunks, _ = make_chunks(
        fragments, token_lists, comma, tokenizer.eos_token_id, lookup, PLACEHOLDER_ID, length=chunk_length(encoder)
    )
    return chunks


def chunk_length(encoder: TextEncoder) -> int:
    """Prompt tokens per chunk: 75 for CLIP's 77 positions, fewer for a smaller text encoder."""
    positions = encoder.encoder.config.max_position_embeddings
    return min(CHUNK_LENGTH, positions - 2, encoder.tokenizer.model_max_length - 2)


def _comma_id(tokenizer) -> int | None:
    """The id of "," as a word of its own (CLIP's ",</w>"), where chunks prefer to end."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    return None if comma == tokenizer.unk_token_id else comma


def _encode_text(per_encoder: list[list[PromptChunk]], encoders: list[TextEncoder], count: int, clip_skip: int, device):
    """(embeddings [1, count * 77, width(s)], pooled [1, projection] or None) of one text."""
    hidden, pooled = [], None
    for chunks, encoder in zip(per_encoder, encoders, strict=False):
        end = encoder.tokenizer.eos_token_id
        length = chunk_length(encoder)
        chunks = chunks + [PromptChunk([end] * length, [1.0] * length, []) for _ in range(count - len(chunks))]
        z, chunk_pooled = _encode_chunks(chunks, encoder, clip_skip, device)
        hidden.append(z.reshape(1, -1, z.shape[-1]))
        if encoder.pooled:
            pooled = chunk_pooled[:1]  # the first chunk's, as A1111
    return torch.cat(hidden, dim=-1), pooled


def _encode_chunks(chunks: list[PromptChunk], encoder: TextEncoder, clip_skip: int, device):
    """All chunks of one text through one encoder as one batch: ([chunks, 77, width], pooled)."""
    tokenizer = encoder.tokenizer
    start, end, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = []
    for chunk in chunks:
        ids = [start] + chunk.tokens + [end]
        if pad is not None and pad != end:  # pad after the first end token (OpenCLIP pads with 0)
            first_end = ids.index(end)
            ids = ids[: first_end + 1] + [pad] * (len(ids) - first_end - 1)
        rows.append(ids)
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)
    kwargs = {}
    if getattr(encoder.encoder.config, "use_attention_mask", False):  # as diffusers does for such encoders
        kwargs["attention_mask"] = _attention_mask(rows, end).to(device)
    need_layers = encoder.penultimate or clip_skip > 1
    with _embedding_fixes(encoder, chunks):
        output = encoder.encoder(input_ids, output_hidden_states=need_layers, **kwargs)
    if encoder.penultimate:
        layers = output.hidden_states
        z = layers[-min(clip_skip + 1, len(layers))]
    elif clip_skip > 1:
        layers = output.hidden_states
        text_model = getattr(encoder.encoder, "text_model", encoder.encoder)
        z = text_model.final_layer_norm(layers[-min(clip_skip, len(layers))])
    else:
        z = output.last_hidden_state
    pooled = output.text_embeds if encoder.pooled else None
    return _emphasis(z, chunks), pooled


def _attention_mask(rows: list[list[int]], end: int) -> torch.Tensor:
    return torch.tensor([[1] * (row.index(end) + 1) + [0] * (len(row) - row.index(end) - 1) for row in rows])


def _emphasis(z: torch.Tensor, chunks: list[PromptChunk]) -> torch.Tensor:
    """A1111's "Original" emphasis, per chunk: z * weight, then rescaled to the original mean."""
    out = []
    for i, chunk in enumerate(chunks):
        zi = z[i]
        if any(w != 1.0 for w in chunk.weights):  # all ones would rescale by exactly 1: skip the work
            weights = torch.tensor([1.0] + chunk.weights + [1.0], dtype=zi.dtype, device=zi.device)
            original_mean = zi.mean()
            zi = zi * weights.unsqueeze(-1)
            zi = zi * (original_mean / zi.mean())
        out.append(zi)
    return torch.stack(out)


class _embedding_fixes:
    """While encoding, embedding vectors replace the placeholder tokens' embeddings (A1111's
    EmbeddingsWithFixes): a forward hook on the token embedding, removed right after, so the
    model itself never changes."""

    def __init__(self, encoder: TextEncoder, chunks: list[PromptChunk]):
        self.encoder, self.chunks, self.handle = encoder, chunks, None

    def __enter__(self):
        if any(chunk.fixes for chunk in self.chunks):
            self.handle = self.encoder.encoder.get_input_embeddings().register_forward_hook(self._replace)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()

    def _replace(self, module, inputs, output):
        output = output.clone()
        for row, chunk in enumerate(self.chunks):
            for offset, embedding in chunk.fixes:
                vectors = embedding.vectors[self.encoder.key].to(output.device, output.dtype)
                position = 1 + offset  # after the start token
                output[row, position : position + vectors.shape[0]] = vectors
        return output


def _execution_device(pipe):
    device = getattr(pipe, "_execution_device", None)
    return device if device is not None else pipe.device
