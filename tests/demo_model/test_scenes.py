"""Tests for the demo model's scene grammar, drawing and read-back (fast), plus one
end-to-end generation with the bundled weights (a few seconds on CPU)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from studio.demo_model import scenes

MODEL = Path(__file__).resolve().parents[2] / "resources" / "demo-model"


def test_vocabulary_and_palette():
    assert len(scenes.PALETTE) == 8
    for word in ("a", "on", "the", ",", "background", "red", "circle", "left", "small"):
        assert word in scenes.VOCAB
    assert all(0 <= v <= 255 for rgb in scenes.PALETTE.values() for v in rgb)


def test_full_caption_matches_grammar():
    s = scenes.Scene("large", "red", "circle", "left", "blue")
    assert s.full_caption() == "a large red circle on the left, blue background"
    assert scenes.parse_caption(s.full_caption()) == {
        "size": "large", "color": "red", "shape": "circle", "position": "left", "background": "blue"}


def test_random_scene_never_same_colors_and_respects_held_out():
    rng = random.Random(0)
    for _ in range(2000):
        s = scenes.random_scene(rng, allow_held_out=False)
        assert s.color != s.background
        assert s.triple() not in scenes.HELD_OUT
    s = scenes.random_scene(rng, color="red", background="blue", shape="circle")
    assert s.triple() == ("red", "circle", "blue")
    with pytest.raises(ValueError):
        scenes.random_scene(rng, color="red", background="red")


def test_training_captions_are_consistent_with_scene():
    rng = random.Random(1)
    seen_short = seen_junk = False
    for _ in range(2000):
        s = scenes.random_scene(rng)
        text = scenes.caption(s, rng)
        assert text
        attrs = scenes.parse_caption(text)
        for key, value in attrs.items():
            assert getattr(s, key) == value, (text, s)
        seen_short |= len(attrs) < 5
        seen_junk |= any(w not in scenes.VOCAB for w in text.replace(",", " ").split())
    assert seen_short and seen_junk


def test_draw_size_and_colors():
    s = scenes.Scene("large", "red", "square", "center", "blue")
    img = scenes.draw(s)
    assert img.size == (scenes.NATIVE, scenes.NATIVE) and img.mode == "RGB"
    arr = np.asarray(img)
    assert tuple(arr[0, 0]) == scenes.PALETTE["blue"]
    assert tuple(arr[32, 32]) == scenes.PALETTE["red"]


@pytest.mark.parametrize("shape", scenes.SHAPES)
@pytest.mark.parametrize("position", scenes.POSITIONS)
@pytest.mark.parametrize("size", scenes.SIZES)
def test_analyze_every_shape_position_size(shape, position, size):
    rng = random.Random(hash((shape, position, size)) & 0xFFFF)
    for _ in range(6):
        s = scenes.random_scene(rng, shape=shape, position=position, size=size)
        r = scenes.analyze(scenes.draw(s))
        assert all(scenes.score(s, r).values()), (s, r)


def test_analyze_every_color_pair():
    rng = random.Random(2)
    for color in scenes.COLORS:
        for background in scenes.COLORS:
            if color != background:
                s = scenes.random_scene(rng, color=color, background=background)
                r = scenes.analyze(scenes.draw(s))
                assert (r["color"], r["background"]) == (color, background), (s, r)


def test_analyze_is_robust_to_noise():
    rng = random.Random(3)
    nrng = np.random.default_rng(3)
    from PIL import Image

    ok = 0
    for _ in range(200):
        s = scenes.random_scene(rng)
        arr = np.asarray(scenes.draw(s)).astype(np.float32) + nrng.normal(0, 12, (scenes.NATIVE, scenes.NATIVE, 3))
        r = scenes.analyze(Image.fromarray(arr.clip(0, 255).astype(np.uint8)))
        ok += all(scenes.score(s, r).values())
    assert ok >= 196


def test_analyze_empty_image():
    from PIL import Image

    r = scenes.analyze(Image.new("RGB", (64, 64), scenes.PALETTE["green"]))
    assert r["background"] == "green" and r["color"] is None and r["shape"] is None


def test_demo_model_folder_files():
    assert (MODEL / "model_index.json").exists(), "the demo model ships in resources/demo-model"
    index = json.loads((MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["requires_safety_checker"] is False
    studio = json.loads((MODEL / "studio.json").read_text())
    assert studio["native_size"] == [scenes.NATIVE, scenes.NATIVE]
    preview = json.loads((MODEL / "latent_preview.json").read_text())
    assert len(preview["factors"]) == 4 and all(len(r) == 3 for r in preview["factors"])
    assert len(preview["bias"]) == 3
    total = sum(p.stat().st_size for p in MODEL.rglob("*.safetensors"))
    assert total <= 40 * 1024 * 1024


def test_demo_model_generates_the_prompt(monkeypatch):
    assert (MODEL / "model_index.json").exists(), "the demo model ships in resources/demo-model"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(2)
    studio = json.loads((MODEL / "studio.json").read_text())
    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a large red circle on the left, blue background", num_inference_steps=20,
                 guidance_scale=studio["default_guidance"], generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == tuple(studio["native_size"])
    r = scenes.analyze(image)
    assert (r["background"], r["color"], r["shape"], r["position"]) == ("blue", "red", "circle", "left"), r


def test_demo_model_places_the_object_where_the_caption_says(monkeypatch):
    """Same seed, five position words: the layout must follow the words, not the noise."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import StableDiffusionPipeline

    studio = json.loads((MODEL / "studio.json").read_text())
    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    captions = [f"a small yellow square on the {p}, purple background" for p in scenes.POSITIONS]
    images = pipe(captions, num_inference_steps=20, guidance_scale=studio["default_guidance"],
                  generator=[torch.Generator().manual_seed(1) for _ in captions]).images
    assert [scenes.analyze(im)["position"] for im in images] == list(scenes.POSITIONS)


def test_demo_text_encoder_keeps_every_attribute_apart():
    """A text encoder trained jointly with the UNet let the position words collapse to nearly
    the same states, so no UNet could follow them. The shipped one keeps each attribute's
    words well apart in the sentence states (end-of-text and padding) the UNet reads."""
    import torch
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(MODEL / "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(str(MODEL / "text_encoder")).eval()
    base = scenes.Scene("large", "red", "circle", "left", "blue")
    variants = {"position": "right", "color": "yellow", "shape": "square", "background": "green", "size": "small"}

    def sentence_states(scene):
        enc = tokenizer(scene.full_caption(), padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt")
        with torch.no_grad():
            states = encoder(enc.input_ids)[0][0]
        return states[int(enc.attention_mask.sum()) - 1:]  # end-of-text and padding

    ref = sentence_states(base)
    for attribute, value in variants.items():
        other = sentence_states(scenes.Scene(**{**base.__dict__, attribute: value}))
        relative = ((ref - other).norm(dim=-1) / ref.norm(dim=-1)).mean().item()
        assert relative > 0.25, (attribute, relative)
