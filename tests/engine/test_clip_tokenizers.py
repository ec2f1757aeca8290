"""The shipped CLIP tokenizer gives OpenAI CLIP's ids, pads per family, and never needs a network."""

import json
import socket

import pytest

from studio.engine.clip_tokenizers import PAD_BANG, PAD_EOS, clip_tokenizer, tokenizer_dir

BOS, EOS = 49406, 49407


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket the tokenizer opened would fail the test; built fresh under the block."""

    def refuse(*args, **kwargs):
        raise AssertionError("the CLIP tokenizer tried to reach the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    clip_tokenizer.cache_clear()
    yield
    clip_tokenizer.cache_clear()


def test_vocabulary_is_clips_49408_tokens_with_the_specials_last():
    vocab = json.loads((tokenizer_dir() / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["!"] == 0 and vocab["<|startoftext|>"] == BOS and vocab["<|endoftext|>"] == EOS
    merges = (tokenizer_dir() / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and merges[1] == "i n" and len(merges) == 1 + 48894


@pytest.mark.parametrize("pad", [PAD_EOS, PAD_BANG])
def test_known_prompt_ids(pad):
    tok = clip_tokenizer(pad)
    assert tok("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert tok("hello world").input_ids == [BOS, 3306, 1002, EOS]
    # Lower-cased, and punctuation split from words.
    assert tok("A Photo, of a CAT").input_ids == [BOS, 320, 1125, 267, 539, 320, 2368, EOS]
    assert tok("it's a dog").input_ids == [BOS, 585, 568, 320, 1929, EOS]


@pytest.mark.parametrize(("pad", "pad_id"), [(PAD_EOS, EOS), (PAD_BANG, 0)])
def test_max_length_padding_uses_the_familys_pad(pad, pad_id):
    tok = clip_tokenizer(pad)
    assert tok.model_max_length == 77
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (BOS, EOS, pad_id)
    ids = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    assert len(ids) == 77
    assert ids[:7] == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert ids[7:] == [pad_id] * 70


def test_long_prompts_truncate_to_77_ending_in_eos():
    ids = clip_tokenizer()(" ".join(["cat"] * 100), truncation=True, max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == BOS and ids[-1] == EOS and ids[1:-1] == [2368] * 75


def test_exclamation_marks_match_openclip_unless_bang_is_the_pad():
    # OpenCLIP tokenizes "! !! !!!" as 256 748 995 (diffusers issue #4153); so does the EOS-pad
    # tokenizer. With pad "!" (SD 2.x, SDXL tokenizer_2) the Hub's tokenizer turns each "!" into
    # the pad id 0, and ours must do what the Hub's does.
    assert clip_tokenizer(PAD_EOS)("! !! !!!").input_ids == [BOS, 256, 748, 995, EOS]
    assert clip_tokenizer(PAD_BANG)("! !! !!!").input_ids == [BOS] + [0] * 6 + [EOS]


def test_one_shared_tokenizer_per_pad_token():
    assert clip_tokenizer(PAD_EOS) is clip_tokenizer(PAD_EOS)
    assert clip_tokenizer(PAD_EOS) is not clip_tokenizer(PAD_BANG)


def test_the_tool_rebuilds_the_committed_files_from_a_clip_merge_list(tmp_path):
    """Re-gzip the committed merges in the layout of bpe_simple_vocab_16e6.txt.gz (a header line,
    the merges, then more merges CLIP never uses) and run the tool: same bytes come out."""
    import gzip

    from studio.dev import make_clip_tokenizer as tool

    merges = (tokenizer_dir() / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    source = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(source, "wt", encoding="utf-8") as f:
        f.write('"bpe_simple_vocab_16e6.txt#version: 0.2\n' + "\n".join(merges + ["unused merge"] * 3) + "\n")
    assert tool.main([str(source), "--out", str(tmp_path / "out")]) == 0
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "out" / name).read_bytes() == (tokenizer_dir() / name).read_bytes(), name


def test_the_tools_byte_alphabet_is_clips():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from studio.dev.make_clip_tokenizer import bytes_to_unicode as ours

    assert ours() == bytes_to_unicode()
