"""LoRAs from the prompt on the tiny SD 1.x model: real LoRAs made by peft, written in kohya's
format, loaded by diffusers through the engine.

Each comparison runs the same prompt text and changes only which LoRA files the engine can see,
so the pixels differ only by what the LoRAs do (however the prompt's tags are encoded)."""

import shutil
import threading

import numpy as np
import pytest
from peft.tuners.tuners_utils import BaseTunerLayer

from studio.core.events import ImageFinished, JobFinished
from studio.core.generation.request import GenerationRequest, Mode
from studio.core.storage.outputs import OutputWriter
from studio.engine import lora as lora_module
from studio.engine.engine import Engine
from tests.lora_files import write_family_lora, write_header_only_lora

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory):
    """Two folders of real LoRAs for the tiny model (seed 0), and one with other families' LoRAs."""
    from studio.dev.bench_lora import make_kohya_lora
    from studio.engine.tiny_model import build_tiny_pipeline

    pipe = build_tiny_pipeline(0)
    root = tmp_path_factory.mktemp("loras")
    make_kohya_lora(pipe, root / "one" / "style one.safetensors", seed=1)
    make_kohya_lora(pipe, root / "two" / "sub" / "style_two.safetensors", seed=2)
    make_kohya_lora(pipe, root / "te" / "words only.safetensors", seed=3, unet=False)
    write_family_lora(root / "other" / "xl style.safetensors", "sdxl")
    (root / "broken").mkdir()
    (root / "broken" / "half.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    module = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"  # 64 wide in the model
    write_header_only_lora(root / "broken" / "wide.safetensors", {
        f"{module}.lora_down.weight": (4, 48), f"{module}.lora_up.weight": (48, 4), f"{module}.alpha": (),
    })
    return {name: str(root / name) for name in ("one", "two", "te", "other", "broken")}


@pytest.fixture
def engine(tmp_path):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append, previews=False)
    engine.events = events
    return engine


def run(engine, model_dir, prompt, dirs=(), **changes):
    """One job's (pixels, note) with only the LoRA folders `dirs` visible."""
    engine.lora_dirs = list(dirs)
    base = dict(prompt=prompt, steps=2, width=64, height=64, seed=7, sampler="Euler", model=str(model_dir))
    engine.events.clear()
    engine.generate(GenerationRequest(**{**base, **changes}), threading.Event())
    finished = [e for e in engine.events if isinstance(e, ImageFinished)]
    assert finished and any(isinstance(e, JobFinished) for e in engine.events), engine.events
    return finished[0].image, finished[0].note


def peft_layers(engine):
    pipe = engine.model.pipe
    return [m for part in (pipe.unet, pipe.text_encoder) for m in part.modules() if isinstance(m, BaseTunerLayer)]


def test_lora_changes_pixels_and_the_next_job_matches_the_one_before(engine, tiny_model_dir, lora_dirs):
    before, _ = run(engine, tiny_model_dir, "a red circle")
    tagged = "a red circle <lora:style one:1>"
    with_lora, note = run(engine, tiny_model_dir, tagged, [lora_dirs["one"]])
    assert note == ""
    assert peft_layers(engine)  # loaded...
    after, _ = run(engine, tiny_model_dir, "a red circle")
    assert np.array_equal(before, after)  # ...and switched off: the model is as it was, bit for bit
    without, note = run(engine, tiny_model_dir, tagged, [])
    assert "style one was not found" in note and "made without it" in note
    assert np.abs(with_lora.astype(int) - without.astype(int)).mean() > 1


def test_weight_zero_is_exactly_no_lora(engine, tiny_model_dir, lora_dirs):
    prompt = "a red circle <lora:style one:0>"
    absent, _ = run(engine, tiny_model_dir, prompt, [])
    zero, note = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]])
    assert note == ""
    assert np.array_equal(absent, zero)
    assert not peft_layers(engine)  # never even loaded


def test_two_loras_at_once_and_a_negative_weight(engine, tiny_model_dir, lora_dirs):
    prompt = "a red circle <lora:style one:0.8>, <lora:style_two:-0.6>"
    both, note = run(engine, tiny_model_dir, prompt, [lora_dirs["one"], lora_dirs["two"]])
    assert note == ""
    only_one, note_one = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]])
    only_two, note_two = run(engine, tiny_model_dir, prompt, [lora_dirs["two"]])
    neither, _ = run(engine, tiny_model_dir, prompt, [])
    assert "style_two was not found" in note_one and "style one was not found" in note_two
    images = [both, only_one, only_two, neither]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j]), (i, j)
    again, _ = run(engine, tiny_model_dir, prompt, [lora_dirs["one"], lora_dirs["two"]])
    assert np.array_equal(both, again)


def test_text_encoder_only_lora_changes_pixels(engine, tiny_model_dir, lora_dirs):
    prompt = "a red circle <lora:words only>"
    with_lora, note = run(engine, tiny_model_dir, prompt, [lora_dirs["te"]])
    assert note == ""
    without, _ = run(engine, tiny_model_dir, prompt, [])
    assert not np.array_equal(with_lora, without)
    pipe = engine.model.pipe
    assert not [m for m in pipe.unet.modules() if isinstance(m, BaseTunerLayer)]  # the UNet untouched


def test_lora_for_another_family_is_skipped_with_a_note(engine, tiny_model_dir, lora_dirs):
    prompt = "a red circle <lora:xl style:1>"
    skipped, note = run(engine, tiny_model_dir, prompt, [lora_dirs["other"]])
    assert note == "LoRA xl style is made for SDXL models; this image was made without it."
    absent, _ = run(engine, tiny_model_dir, prompt, [])
    assert np.array_equal(skipped, absent)
    assert not peft_layers(engine)


def test_unreadable_lora_is_a_note_and_the_job_runs(engine, tiny_model_dir, lora_dirs):
    prompt = "a red circle <lora:half:1> <lora:wide:1> <lora:style one:1>"
    image, note = run(engine, tiny_model_dir, prompt, [lora_dirs["broken"], lora_dirs["one"]])
    assert "LoRA half could not be applied (half.safetensors is not a valid .safetensors file" in note
    assert "LoRA wide could not be applied (its layers have other sizes than this model's)" in note
    only_good, _ = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]])
    assert np.array_equal(image, only_good)  # the good one applied, the bad ones left no trace


def test_loaded_loras_are_cached_then_unloaded_when_unused(engine, tiny_model_dir, lora_dirs, monkeypatch):
    loads = []
    original = lora_module.LoraCache.adapter_for

    def counting(self, pipe, path):
        loads.append(self.made)
        return original(self, pipe, path)

    monkeypatch.setattr(lora_module.LoraCache, "adapter_for", counting)
    before, _ = run(engine, tiny_model_dir, "a red circle")
    prompt = "a red circle <lora:style one:1>"
    first, _ = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]])
    second, _ = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]])
    assert np.array_equal(first, second)
    cache = lora_module.cache_for(engine.model, create=False)
    assert cache.made == 1 and len(loads) == 2  # asked twice, read once
    for _ in range(lora_module.KEEP_JOBS):
        after, _ = run(engine, tiny_model_dir, "a red circle")
        assert np.array_equal(before, after)
    assert not cache.loaded and not peft_layers(engine)  # deleted, wrappers and all
    assert not hasattr(engine.model.pipe.unet, "peft_config") or not engine.model.pipe.unet.peft_config


def test_img2img_sees_the_lora_too(engine, tiny_model_dir, lora_dirs, tmp_path):
    from PIL import Image

    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(init)
    prompt = "a red circle <lora:style one:1>"
    changes = dict(mode=Mode.IMG2IMG, init_image=str(init), strength=0.9)
    with_lora, _ = run(engine, tiny_model_dir, prompt, [lora_dirs["one"]], **changes)
    without, _ = run(engine, tiny_model_dir, prompt, [], **changes)
    assert not np.array_equal(with_lora, without)


def test_folders_come_from_the_model_folders_and_the_studio(engine, tmp_path, studio_home, lora_dirs):
    a1111 = tmp_path / "webui" / "models"
    (a1111 / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(lora_dirs["one"], a1111 / "Lora")
    engine.library_dirs = [str(a1111 / "Stable-diffusion")]
    engine.lora_dirs = ["/somewhere/else"]
    folders = lora_module.engine_lora_folders(engine)
    assert folders[0] == studio_home / "models" / "loras"
    assert a1111 / "Lora" in folders and folders[-1].as_posix() == "/somewhere/else"


@pytest.mark.slow
def test_sdxl_lora_reaches_the_unet_and_both_text_encoders(engine, tiny_family_dir, tmp_path):
    """kohya's SDXL naming (lora_te1_ / lora_te2_) on the tiny SDXL model; an SD 1.x LoRA is refused."""
    from studio.dev.bench_lora import make_kohya_lora

    folder = tiny_family_dir("sdxl")
    engine.load(str(folder))
    make_kohya_lora(engine.model.pipe, tmp_path / "xl" / "xl style.safetensors", seed=1)
    write_family_lora(tmp_path / "xl" / "old style.safetensors", "sd1")
    prompt = "a red circle <lora:xl style:1> <lora:old style:1>"
    before, _ = run(engine, folder, prompt, [])
    with_lora, note = run(engine, folder, prompt, [str(tmp_path / "xl")])
    assert note == "LoRA old style is made for SD 1.x models; this image was made without it."
    pipe = engine.model.pipe
    for part in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        assert list(part.peft_config) == ["studio_lora_1"]
    after, _ = run(engine, folder, prompt, [])
    assert not np.array_equal(before, with_lora) and np.array_equal(before, after)


def test_bench_lora_times_apply_and_remove():
    from studio.dev.bench_lora import bench_lora

    result = bench_lora(repeats=1)
    assert 0 < result["warm_s"] < result["cold_s"] and result["goal_s"] == 0.5 and result["loras"] == 2


def test_saved_image_names_the_loras_it_used_with_their_hashes(engine, tiny_model_dir, lora_dirs):
    """`Lora hashes` comes from the folders the engine read (here a --lora-dir one, which the
    model's own folder does not hold), hashed once in the engine, written by saving."""
    from pathlib import Path

    from PIL import Image

    from studio.core.generation.lora_tags import lora_hash

    run(engine, tiny_model_dir, "a red circle <lora:style one:0.8>", [lora_dirs["one"]])
    (finished,) = [e for e in engine.events if isinstance(e, ImageFinished)]
    short = lora_hash(Path(lora_dirs["one"]) / "style one.safetensors")[:12]
    assert finished.request.lora_hashes == f"style one: {short}"
    assert f'Lora hashes: "style one: {short}"' in Image.open(finished.path).text["parameters"]
