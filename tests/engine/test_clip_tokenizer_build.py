"""The CLIP tokenizer is built in GIL-sized pieces and is the same tokenizer transformers builds
from the folder; the one shared object is never changed by a model or an embedding."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from studio.engine.clip_tokenizers import (
    BOS,
    EOS,
    MAX_LENGTH,
    PAD_BANG,
    PAD_EOS,
    clip_tokenizer,
    read_merges,
    read_vocab,
    tokenizer_dir,
)

TEXTS = [
    "a photo of a cat",
    "! !! !!!",
    "Héllo wörld 123 <|endoftext|> it's",
    "(masterpiece:1.2), best quality, <lora:x:0.5> [from:to:10]",
    "  many   spaces\n\tand a newline ü 日本語 🙂",
]


@pytest.mark.parametrize("pad", [PAD_EOS, PAD_BANG])
def test_same_tokenizer_as_from_pretrained(pad):
    """The Rust model, normalizer, pre-tokenizer and post-processor serialize identically, and
    ids, masks and decoding agree on awkward text, padded or not."""
    ours = clip_tokenizer(pad)
    theirs = CLIPTokenizer.from_pretrained(
        str(tokenizer_dir()), model_max_length=MAX_LENGTH, bos_token=BOS, eos_token=EOS, unk_token=EOS,
        pad_token=pad, local_files_only=True,
    )
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    assert ours.special_tokens_map == theirs.special_tokens_map and len(ours) == len(theirs)
    for kwargs in ({}, {"padding": "max_length", "max_length": 77, "truncation": True}, {"add_special_tokens": False}):
        assert ours(TEXTS, **kwargs).data == theirs(TEXTS, **kwargs).data
    assert [ours.decode(ids) for ids in ours(TEXTS).input_ids] == [theirs.decode(ids) for ids in theirs(TEXTS).input_ids]


@pytest.mark.parametrize("slices", [1, 3, 16, 997, 10**6])
def test_vocab_in_slices_equals_json_load(slices):
    """Any slicing, down to one entry a slice, which tries a cut inside the token "," too."""
    path = tokenizer_dir() / "vocab.json"
    whole = json.loads(path.read_text(encoding="utf-8"))
    sliced = read_vocab(path, slices)
    assert sliced == whole and list(sliced) == list(whole)


def test_vocab_slices_survive_quotes_commas_and_escapes(tmp_path):
    vocab = {",": 0, '","': 1, '\\",': 2, ',"x': 3, "\\": 4, "é,\"": 5, '":1,"': 6, "plain": 7}
    path = tmp_path / "vocab.json"
    for ensure_ascii in (True, False):
        path.write_text(json.dumps(vocab, ensure_ascii=ensure_ascii, separators=(",", ":")), encoding="utf-8")
        for slices in range(1, 12):
            assert read_vocab(path, slices) == vocab
    path.write_text("[1, 2]", encoding="utf-8")
    assert read_vocab(path) == [1, 2]  # not an object: json.loads decides, as before


def test_merges_are_the_file_lines_without_the_header():
    merges = read_merges(tokenizer_dir() / "merges.txt")
    assert len(merges) == 48894 and merges[0] == ("i", "n") and all(len(pair) == 2 for pair in merges)


def test_vocab_is_parsed_in_short_pieces(monkeypatch):
    """Each json.loads call (one GIL hold: the C parser never lets go) gets about 1/VOCAB_SLICES
    of the file, never the whole of it (the whole took ~15 ms, studio.dev.bench_stall)."""
    from studio.engine import clip_tokenizers

    sizes: list[int] = []
    real_loads = json.loads

    def counting_loads(text, *args, **kwargs):
        sizes.append(len(text))
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(clip_tokenizers.json, "loads", counting_loads)
    path = tokenizer_dir() / "vocab.json"
    read_vocab(path)
    whole = len(path.read_text(encoding="utf-8"))
    assert len(sizes) >= clip_tokenizers.VOCAB_SLICES
    assert max(sizes) < 1.1 * whole / clip_tokenizers.VOCAB_SLICES


@pytest.mark.slow  # builds a tiny SD 1.x pipeline (~1.5 s)
def test_embeddings_leave_the_shared_tokenizer_as_it_was():
    """Every single-file load hands out the one shared tokenizer; a prompt that uses an
    embedding (encoded the engine's way) adds no token to it, so the next model reads the same
    words as words."""
    from types import SimpleNamespace

    from studio.core.models.family import Family
    from studio.core.storage.paths import data_home
    from studio.engine.families import adapter_for
    from studio.engine.prompt_encoding import encode_request
    from studio.engine.tiny_model import build_tiny_family

    shared = clip_tokenizer(PAD_EOS)
    assert adapter_for(Family.SD1).tokenizers()["tokenizer"] is shared
    xl = adapter_for(Family.SDXL).tokenizers()
    assert xl["tokenizer"] is shared and xl["tokenizer_2"] is clip_tokenizer(PAD_BANG)
    before = shared.backend_tokenizer.to_str(), len(shared), shared.get_added_vocab()
    words = shared("a shinystyle cat", add_special_tokens=False).input_ids

    pipe = build_tiny_family("sd1")
    pipe.tokenizer = shared  # as loader._from_single_file hands it over
    folder = data_home() / "models" / "embeddings"  # the studio's own folder, in the test's home
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(3, 32)}, str(folder / "shinystyle.safetensors"))
    model = SimpleNamespace(path="/nowhere/tiny.safetensors", info=SimpleNamespace(family=Family.SD1), pipe=pipe)
    request = SimpleNamespace(prompt="a shinystyle cat", negative_prompt="", guidance=7.0, clip_skip=1)
    encoded = encode_request(model, pipe, request)
    assert list(encoded.embeddings) == ["shinystyle"]  # the embedding was used...
    assert (shared.backend_tokenizer.to_str(), len(shared), shared.get_added_vocab()) == before  # ...and added nothing
    assert shared("a shinystyle cat", add_special_tokens=False).input_ids == words
