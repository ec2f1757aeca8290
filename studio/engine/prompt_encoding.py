"""The prompt as the pipeline gets it: A1111's weighted, chunked encoding, done here.

A1111 (modules/sd_hijack_clip.py, FrozenCLIPEmbedderWithCustomWordsBase) reads a prompt thus,
and so do we:
1. extra-network tags (`<lora:...>`) come out; the rest is parsed into weighted fragments and
   BREAKs (studio.core.prompt_syntax);
2. fragments are tokenized without start/end tokens and packed into chunks of 75 tokens (a full
   chunk ends after its last comma when that is within 20 tokens; BREAK ends one early);
   an embedding's name becomes its vectors, which take token slots like words;
3. each chunk is encoded as [start] + 75 + [end], padded with the tokenizer's pad token after the
   first end token (SD 2.x and SDXL's second encoder pad with "!", id 0);
4. the hidden state per clip skip: SD 1.x and SD 2.x take `hidden_states[-clip_skip]` through
   the final layer norm (clip skip 1 is the last layer; diffusers' SD 2.x encoder already ends at
   OpenCLIP's penultimate layer, which is the layer A1111 uses); SDXL takes
   `hidden_states[-(clip_skip + 1)]` of both encoders, no layer norm, as its pipeline does;
5. each token's vector is multiplied by its weight, and the chunk is rescaled so its mean is what
   it was (A1111's "Original" emphasis), then the chunks are joined along the sequence;
6. prompt and negative prompt are padded with empty chunks to the same count (A1111's "pad
   prompt/negative prompt to be same length"; diffusers needs one shape for both).
SDXL's pooled embedding is text_encoder_2's of the first chunk (A1111's choice); an empty SDXL
negative prompt is zeros when the model says `force_zeros_for_empty_prompt` (diffusers' and
A1111's behaviour).

A plain prompt under 75 tokens at clip skip 1 gives exactly the tensors of the pipeline's own
`encode_prompt`, so such prompts keep their pixels. Nothing is cached between jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.core.model_detect import Family
from studio.core.prompt_syntax import (
    CHUNK_LENGTH,
    PromptChunk,
    extract_extra_networks,
    make_chunks,
    parse_prompt_attention,
)
from studio.engine.embeddings import SD_KEY, Embedding, EmbeddingLookup, embedding_files

PLACEHOLDER_ID = 0  # the token under an embedding's vectors (A1111 uses 0 too); replaced before use


@dataclass
class TextEncoder:
    """One tokenizer and text encoder of a pipeline, and how its output is read."""

    tokenizer: object
    encoder: torch.nn.Module
    key: str  # this encoder's vectors in an embedding file
    sdxl: bool  # hidden states counted from the penultimate layer, no final layer norm
    pooled: bool = False  # SDXL's text_encoder_2: its projected pooled output conditions the UNet

    @property
    def width(self) -> int:
        return self.encoder.get_input_embeddings().embedding_dim


@dataclass
class EncodedPrompt:
    """The pipeline's prompt arguments, and what the artist should know about them."""

    arguments: dict
    chunks: int = 1
    notes: list[str] = field(default_factory=list)
    embeddings: dict[str, Embedding] = field(default_factory=dict)  # used, by name (A1111's "TI hashes")


def text_encoders(family: Family, pipe) -> list[TextEncoder]:
    if family is Family.SDXL:
        return [
            TextEncoder(pipe.tokenizer, pipe.text_encoder, "clip_l", sdxl=True),
            TextEncoder(pipe.tokenizer_2, pipe.text_encoder_2, "clip_g", sdxl=True, pooled=True),
        ]
    return [TextEncoder(pipe.tokenizer, pipe.text_encoder, SD_KEY, sdxl=False)]


def _cached(model, pipe, request) -> EncodedPrompt:
    """The request's encoded prompts, once per job: the prompt, LoRAs and embeddings are the same
    for every image of a batch and for the hires pass (the engine clears the cache per job).
    Under CPU offload each encoding would move the text encoders onto the GPU and back."""
    cache = getattr(model, "prompt_cache", None)
    key = (request.prompt, request.negative_prompt, request.clip_skip, request.guidance > 1.0)
    if cache is None:
        return encode_request(model, pipe, request)
    if key not in cache:
        cache[key] = encode_request(model, pipe, request)
    return cache[key]


def prompt_arguments(model, pipe, request) -> dict:
    """Keyword arguments for the pipeline call that carry the prompt and negative prompt."""
    return _cached(model, pipe, request).arguments


def prompt_notes(model, request) -> list[str]:
    """Notes about the request's prompts for the artist (embeddings left out and why)."""
    return list(_cached(model, model.pipe, request).notes)


def encode_request(model, pipe, request) -> EncodedPrompt:
    family = model.info.family
    encoders = text_encoders(family, pipe)
    lookup = _lookup(model, encoders)
    cfg = request.guidance > 1.0  # the pipelines' do_classifier_free_guidance
    negative_text = extract_extra_networks(request.negative_prompt or "")[0]
    zero_negative = (family is Family.SDXL and not negative_text
                     and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False)))
    # Chunks per encoder, for the prompt and (when the negative is used and encoded) the negative.
    texts = [request.prompt] + ([request.negative_prompt or ""] if cfg and not zero_negative else [])
    chunked = [[_chunks(text, encoder, lookup) for encoder in encoders] for text in texts]
    count = max(len(chunks) for per_text in chunked for chunks in per_text)
    device = _execution_device(pipe)
    with torch.no_grad():
        # A1111 applies clip skip to SD 1.x only: its SD 2.x encoder ignores it, and on SDXL it is
        # off by default (sdxl_clip_l_skip), so pasted SDXL infotexts with "Clip skip: 2" (Pony,
        # Illustrious) render as in A1111.
        clip_skip = request.clip_skip if family is Family.SD1 else 1
        encoded = [_encode_text(per_text, encoders, count, clip_skip, device) for per_text in chunked]
    embeds, pooled = encoded[0]
    arguments = {"prompt_embeds": embeds}
    if family is Family.SDXL:
        arguments["pooled_prompt_embeds"] = pooled
    if cfg:
        if zero_negative:
            negative, negative_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
        else:
            negative, negative_pooled = encoded[1]
        arguments["negative_prompt_embeds"] = negative
        if family is Family.SDXL:
            arguments["negative_pooled_prompt_embeds"] = negative_pooled
    return EncodedPrompt(arguments, count, lookup.notes, dict(lookup.used))


def _lookup(model, encoders: list[TextEncoder]) -> EmbeddingLookup:
    files = embedding_files(model.path)
    widths = {encoder.key: encoder.width for encoder in encoders}
    return EmbeddingLookup(files, encoders[0].tokenizer, model.info.family, widths, chunk_length(encoders[0]))


def _chunks(text: str, encoder: TextEncoder, lookup: EmbeddingLookup) -> list[PromptChunk]:
    fragments = parse_prompt_attention(extract_extra_networks(text)[0])
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
    need_layers = encoder.sdxl or clip_skip > 1
    with _embedding_fixes(encoder, chunks):
        output = encoder.encoder(input_ids, output_hidden_states=need_layers, **kwargs)
    if encoder.sdxl:
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
