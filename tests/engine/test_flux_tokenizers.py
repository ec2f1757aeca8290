"""Flux's tokenizers load from resources/ with the network blocked and give T5 v1.1's ids."""

import socket

from studio.engine.flux_tokenizers import T5_EOS_ID, T5_MAX_LENGTH, T5_PAD_ID, flux_clip_tokenizer, t5_tokenizer, t5_tokenizer_dir


def test_t5_tokenizer_gives_t5_v1_1_ids_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    t5_tokenizer.cache_clear()
    tokenizer = t5_tokenizer()
    # T5 v1.1 / FLUX.1's tokenizer_2: "▁a" is split as "▁" (3) + "a" (9); "</s>" (1) ends the prompt.
    assert tokenizer("a photo of a cat").input_ids == [3, 9, 1202, 13, 3, 9, 1712, T5_EOS_ID]
    assert tokenizer("A cat holding a sign that says hello world").input_ids == [
        71,
        1712,
        3609,
        3,
        9,
        1320,
        24,
        845,
        21820,
        296,
        1,
    ]
    padded = tokenizer("cat", padding="max_length", max_length=T5_MAX_LENGTH, truncation=True).input_ids
    assert len(padded) == T5_MAX_LENGTH and padded[:3] == [1712, T5_EOS_ID, T5_PAD_ID]
    assert tokenizer.model_max_length == T5_MAX_LENGTH and len(tokenizer) == 32100


def test_provenance_and_licence_ship_beside_the_vocabulary():
    text = (t5_tokenizer_dir() / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in text and "a125cd84b054a57729b5eecab930ca9408719832" in text


def test_clip_tokenizer_pads_with_end_of_text_as_flux_does():
    tokenizer = flux_clip_tokenizer()
    ids = tokenizer("a cat", padding="max_length", max_length=77).input_ids
    assert ids[:4] == [49406, 320, 2368, 49407] and ids[-1] == 49407
