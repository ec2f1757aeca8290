"""A1111's prompt encoding on tiny models: weights, chunks, BREAK, clip skip, embeddings."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from studio.core.events import ImageFinished
from studio.core.generation.request import GenerationRequest
from studio.core.models.family import Family
from studio.core.models.model_library import embedding_folders
from studio.core.storage.outputs import OutputWriter
from studio.core.storage.paths import data_home
from studio.engine import engine as engine_module
from studio.engine.embeddings import embedding_files
from studio.engine.engine import Engine
from studio.engine.prompt_encoding import encode_request, prompt_notes
from studio.engine.tiny_model import build_tiny_family

# 12 words that are one CLIP token each, to build prompts of a known token count.
WORDS = ["red", "green", "blue", "circle", "square", "left", "right", "cat", "dog", "tree", "house", "sky"]


@pytest.fixture(scope="module")
def pipes():
    return {family: build_tiny_family(family) for family in ("sd1", "sd2", "sdxl")}


def _model(pipe, family, path="/nowhere/tiny.safetensors"):
    return SimpleNamespace(path=path, info=SimpleNamespace(family=Family(family)), pipe=pipe)


def _encode(pipe, family, prompt, negative="", guidance=7.0, clip_skip=1):
    request = SimpleNamespace(prompt=prompt, negative_prompt=negative, guidance=guidance, clip_skip=clip_skip)
    return encode_request(_model(pipe, family), pipe, request)


def _reference(pipe, family, prompt, negative=""):
    """The pipeline's own encode_prompt (truncates at 77 tokens)."""
    with torch.no_grad():
        if family == "sdxl":
            return pipe.encode_prompt(prompt, negative_prompt=negative or None, device="cpu", do_classifier_free_guidance=True)
        return pipe.encode_prompt(prompt, "cpu", 1, True, negative or None)


def _words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def test_every_word_is_one_token(pipes):
    ids = pipes["sd1"].tokenizer(WORDS + [","], add_special_tokens=False)["input_ids"]
    assert all(len(i) == 1 for i in ids)


@pytest.mark.parametrize("negative", ["blue square", ""])
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_plain_prompt_equals_the_pipelines_encode_prompt(pipes, family, negative):
    pipe = pipes[family]
    ours = _encode(pipe, family, "a red circle, on the left", negative).arguments
    reference = _reference(pipe, family, "a red circle, on the left", negative)
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    for name, expected in zip(names, reference, strict=False):
        assert ours[name].shape == expected.shape
        assert torch.allclose(ours[name], expected, atol=1e-6, rtol=0), name


def test_weights_match_a_hand_computation(pipes):
    pipe = pipes["sd1"]
    plain = _reference(pipe, "sd1", "a red circle")[0][0]  # same tokens, no weights: [77, 32]
    weighted = _encode(pipe, "sd1", "a (red:1.5) [circle]").arguments["prompt_embeds"][0]
    weights = torch.ones(77)
    weights[2], weights[3] = 1.5, 1 / 1.1  # BOS, "a", "red", "circle"
    expected = plain * weights[:, None]
    expected = expected * (plain.mean() / expected.mean())
    assert torch.allclose(weighted, expected, atol=1e-6)
    assert not torch.allclose(weighted, plain, atol=1e-3)


def test_long_prompt_is_chunked_at_the_last_comma(pipes):
    pipe = pipes["sd1"]
    head, tail = _words(60), _words(30, start=5)  # 60 + "," + 30 = 91 tokens: cut after the comma
    encoded = _encode(pipe, "sd1", f"{head}, {tail}")
    embeds = encoded.arguments["prompt_embeds"]
    assert encoded.chunks == 2 and embeds.shape == (1, 154, 32)
    assert torch.allclose(embeds[:, :77], _reference(pipe, "sd1", f"{head},")[0], atol=1e-6)
    assert torch.allclose(embeds[:, 77:], _reference(pipe, "sd1", tail)[0], atol=1e-6)


def test_without_a_near_comma_the_cut_is_at_75_tokens(pipes):
    pipe = pipes["sd1"]
    words = _words(90)
    embeds = _encode(pipe, "sd1", words).arguments["prompt_embeds"]
    assert torch.allclose(embeds[:, :77], _reference(pipe, "sd1", _words(75))[0], atol=1e-6)
    assert torch.allclose(embeds[:, 77:], _reference(pipe, "sd1", _words(15, start=75))[0], atol=1e-6)


def test_break_starts_a_new_chunk(pipes):
    pipe = pipes["sd1"]
    embeds = _encode(pipe, "sd1", "a red circle BREAK blue square").arguments["prompt_embeds"]
    assert embeds.shape == (1, 154, 32)
    assert torch.allclose(embeds[:, :77], _reference(pipe, "sd1", "a red circle")[0], atol=1e-6)
    assert torch.allclose(embeds[:, 77:], _reference(pipe, "sd1", "blue square")[0], atol=1e-6)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_negative_and_prompt_are_padded_to_the_same_chunk_count(pipes, family):
    pipe = pipes[family]
    empty_chunk = _reference(pipe, family, "")[0]
    long_text, short_text = _words(100), "blue square"
    args = _encode(pipe, family, long_text, short_text).arguments
    assert args["prompt_embeds"].shape == args["negative_prompt_embeds"].shape == (1, 154, empty_chunk.shape[-1])
    assert torch.allclose(args["negative_prompt_embeds"][:, 77:], empty_chunk, atol=1e-6)
    args = _encode(pipe, family, short_text, long_text).arguments  # and the other way round
    assert args["prompt_embeds"].shape == args["negative_prompt_embeds"].shape
    assert torch.allclose(args["prompt_embeds"][:, 77:], empty_chunk, atol=1e-6)


def test_sdxl_pooled_comes_from_the_first_chunk_and_empty_negative_is_zeros(pipes):
    pipe = pipes["sdxl"]
    args = _encode(pipe, "sdxl", f"{_words(20)} BREAK {_words(20, 3)}").arguments
    assert torch.allclose(args["pooled_prompt_embeds"], _reference(pipe, "sdxl", _words(20))[2], atol=1e-6)
    assert args["prompt_embeds"].shape == (1, 154, 96)
    assert not args["negative_prompt_embeds"].any() and not args["negative_pooled_prompt_embeds"].any()
    assert args["negative_prompt_embeds"].shape == args["prompt_embeds"].shape


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_no_guidance_no_negative(pipes, family):
    args = _encode(pipes[family], family, "a red circle", "blue", guidance=1.0).arguments
    assert "negative_prompt_embeds" not in args and "negative_pooled_prompt_embeds" not in args


def test_clip_skip_takes_an_earlier_layer_on_sd1(pipes):
    pipe = pipes["sd1"]
    one = _encode(pipe, "sd1", "a red circle", clip_skip=1).arguments["prompt_embeds"]
    two = _encode(pipe, "sd1", "a red circle", clip_skip=2).arguments["prompt_embeds"]
    assert not torch.allclose(one, two, atol=1e-4)
    encoder = pipe.text_encoder
    ids = pipe.tokenizer("a red circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        layers = encoder(ids, output_hidden_states=True).hidden_states
    # the layer before the last, through the final layer norm (A1111's CLIP_stop_at_last_layers)
    assert torch.allclose(two, encoder.final_layer_norm(layers[-2]), atol=1e-6)
    many = _encode(pipe, "sd1", "a red circle", clip_skip=12).arguments["prompt_embeds"]  # more than the tiny model has
    assert torch.isfinite(many).all()


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_clip_skip_is_ignored_on_sd2_and_sdxl_as_in_a1111(pipes, family):
    """A1111's SD 2.x encoder never reads clip skip and its SDXL one ignores it by default: an
    SDXL infotext saying "Clip skip: 2" must render as it did there."""
    pipe = pipes[family]
    one = _encode(pipe, family, "a red circle", clip_skip=1).arguments["prompt_embeds"]
    two = _encode(pipe, family, "a red circle", clip_skip=2).arguments["prompt_embeds"]
    assert torch.equal(one, two)


def test_extra_network_tags_are_not_encoded(pipes):
    pipe = pipes["sd1"]
    tagged = _encode(pipe, "sd1", "a red <lora:style:0.8>circle").arguments["prompt_embeds"]
    assert torch.allclose(tagged, _reference(pipe, "sd1", "a red circle")[0], atol=1e-6)


# --- embeddings ------------------------------------------------------------------------------


def _write_embedding(folder, name, **tensors):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def test_embedding_vectors_replace_the_name_and_take_slots(pipes):
    pipe = pipes["sd1"]
    vectors = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    _write_embedding(data_home() / "models" / "embeddings", "shinystyle", emb_params=vectors)
    encoded = _encode(pipe, "sd1", "a shinystyle circle")
    assert list(encoded.embeddings) == ["shinystyle"] and encoded.notes == []
    # By hand: the token embeddings of [BOS, a, v1, v2, v3, circle, EOS...] through the encoder.
    ids = pipe.tokenizer("a ! ! ! circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hook = pipe.text_encoder.get_input_embeddings().register_forward_hook(
            lambda m, i, out: torch.cat([out[:, :2], vectors[None], out[:, 5:]], dim=1)
        )
        try:
            expected = pipe.text_encoder(ids).last_hidden_state
        finally:
            hook.remove()
    assert torch.allclose(encoded.arguments["prompt_embeds"], expected, atol=1e-6)
    # The hook is gone: the same words afterwards encode as words again.
    (data_home() / "models" / "embeddings" / "shinystyle.safetensors").unlink()
    again = _encode(pipe, "sd1", "a shinystyle circle")
    assert again.embeddings == {}
    assert torch.allclose(again.arguments["prompt_embeds"], _reference(pipe, "sd1", "a shinystyle circle")[0], atol=1e-6)


def test_embedding_of_the_wrong_width_or_family_is_left_out_with_a_note(pipes):
    folder = data_home() / "models" / "embeddings"
    _write_embedding(folder, "wideone", emb_params=torch.randn(2, 768))
    _write_embedding(folder, "xlstyle", clip_l=torch.randn(2, 32), clip_g=torch.randn(2, 64))
    pipe = pipes["sd1"]
    encoded = _encode(pipe, "sd1", "a wideone xlstyle circle")
    assert encoded.embeddings == {}
    assert any("wideone is for SD 1.x (768-wide" in n for n in encoded.notes)
    assert any("xlstyle is for SDXL" in n for n in encoded.notes)
    assert torch.allclose(encoded.arguments["prompt_embeds"], _reference(pipe, "sd1", "a wideone xlstyle circle")[0], atol=1e-6)
    request = SimpleNamespace(prompt="a wideone", negative_prompt="", guidance=7.0, clip_skip=1)
    assert prompt_notes(_model(pipe, "sd1"), request) == [encoded.notes[0]]
    # SDXL takes the SDXL one, in both encoders.
    xl = _encode(pipes["sdxl"], "sdxl", "a xlstyle circle")
    assert list(xl.embeddings) == ["xlstyle"] and xl.notes == []
    words = _reference(pipes["sdxl"], "sdxl", "a xlstyle circle")[0]
    assert not torch.allclose(xl.arguments["prompt_embeds"][..., :32], words[..., :32], atol=1e-4)  # CLIP-L part
    assert not torch.allclose(xl.arguments["prompt_embeds"][..., 32:], words[..., 32:], atol=1e-4)  # bigG part


def test_embedding_folders_of_a1111_and_comfyui_layouts(tmp_path):
    webui = tmp_path / "webui"
    (webui / "models" / "Stable-diffusion" / "sub").mkdir(parents=True)
    (webui / "embeddings").mkdir()
    comfy = tmp_path / "ComfyUI" / "models"
    (comfy / "checkpoints").mkdir(parents=True)
    (comfy / "embeddings").mkdir()
    found = embedding_folders([webui / "models" / "Stable-diffusion", comfy / "checkpoints"])
    assert found[0] == data_home() / "models" / "embeddings"
    assert webui / "embeddings" in found and comfy / "embeddings" in found
    _write_embedding(webui / "embeddings", "a1111emb", emb_params=torch.zeros(1, 32))
    _write_embedding(comfy / "embeddings" / "nested", "comfyemb", emb_params=torch.zeros(1, 32))
    # The engine finds them from the model's own path, in a subfolder too.
    assert "a1111emb" in embedding_files(str(webui / "models" / "Stable-diffusion" / "sub" / "m.safetensors"))
    assert "comfyemb" in embedding_files(str(comfy / "checkpoints" / "m.safetensors"))
    assert "a1111emb" not in embedding_files(str(comfy / "checkpoints" / "m.safetensors"))


# --- through the engine: pixels ----------------------------------------------------------------


@pytest.fixture
def engine(tmp_path):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=False)
    engine.events = events
    return engine


def _pixels(engine, model, **changes):
    base = dict(prompt="a red circle", negative_prompt="blue", steps=2, width=64, height=64, seed=3, sampler="Euler",
                model=str(model))
    before = len(engine.events)
    engine.generate(GenerationRequest(**{**base, **changes}), threading.Event())
    finished = [e for e in engine.events[before:] if isinstance(e, ImageFinished)]
    assert finished, engine.events[before:]
    return finished[0].image


def test_plain_prompt_keeps_the_pixels_of_the_plain_path(engine, tiny_family_dir, monkeypatch):
    model = tiny_family_dir("sd1")
    ours = _pixels(engine, model)
    from studio.engine.prompt_encoding import EncodedPrompt

    monkeypatch.setattr(  # the pipeline's own encode_prompt instead of ours
        engine_module, "prompt_for_pass",
        lambda m, p, r, steps: EncodedPrompt({"prompt": r.prompt, "negative_prompt": r.negative_prompt or None}),
    )
    assert np.array_equal(ours, _pixels(engine, model))


def test_clip_skip_and_the_tail_of_a_long_prompt_change_the_pixels(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    base = _pixels(engine, model)
    assert not np.array_equal(base, _pixels(engine, model, clip_skip=2))
    long_prompt = _words(80)
    assert not np.array_equal(_pixels(engine, model, prompt=long_prompt), _pixels(engine, model, prompt=long_prompt + " dog dog"))
    assert np.array_equal(base, _pixels(engine, model))


def test_embedding_changes_the_pixels_and_its_removal_restores_them(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    before = _pixels(engine, model, prompt="a glowstyle circle")
    path = _write_embedding(data_home() / "models" / "embeddings", "glowstyle", emb_params=torch.randn(2, 32) * 3)
    with_it = _pixels(engine, model, prompt="a glowstyle circle")
    assert not np.array_equal(before, with_it)
    path.unlink()
    assert np.array_equal(before, _pixels(engine, model, prompt="a glowstyle circle"))


def test_a_left_out_embedding_is_a_note_on_the_image(engine, tiny_family_dir):
    model = tiny_family_dir("sd1")
    _write_embedding(data_home() / "models" / "embeddings", "xlonly", clip_l=torch.randn(1, 32), clip_g=torch.randn(1, 64))
    before = len(engine.events)
    _pixels(engine, model, prompt="a xlonly circle")
    (finished,) = [e for e in engine.events[before:] if isinstance(e, ImageFinished)]
    assert "Embedding xlonly is for SDXL, not SD 1.x; it was left out." in finished.note


def test_a_text_encoder_with_fewer_positions_gets_shorter_chunks(tmp_path):
    """The bundled demo model's text encoder has 32 positions: its chunks are 30 tokens, and a
    job on it runs (77-token chunks made it fail outright)."""
    import threading

    from studio.core.events import ImageFinished, JobFailed
    from studio.core.generation.request import GenerationRequest
    from studio.core.storage.outputs import OutputWriter
    from studio.core.storage.paths import demo_model_dir
    from studio.engine.engine import Engine

    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    request = GenerationRequest("a (large:1.2) red circle on the left, blue background", steps=2, width=64, height=64,
                                model=str(demo_model_dir()))
    engine.generate(request, threading.Event())
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert [e for e in events if isinstance(e, ImageFinished)]
