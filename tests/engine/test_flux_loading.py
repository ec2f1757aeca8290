"""Loading Flux offline from every layout artists have, and generating with it: the same weights
give the same image whichever files they came in (fp8 and GGUF Q8_0 files are compared with an
fp8-exact model, so fp8 storage loses nothing), and one loaded model runs every mode."""

import socket

import numpy as np
import pytest
import torch
from diffusers import FluxFillPipeline, FluxImg2ImgPipeline, FluxInpaintPipeline, FluxPipeline
from PIL import Image

from studio.core.errors import StudioError
from studio.engine import flux_loading as fl
from tests import flux_files as ff

pytestmark = pytest.mark.slow
SIZE, STEPS, COMPUTE = 64, 2, torch.float32


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def exact():
    return ff.build_tiny_flux("dev", fp8_exact=True)


def generate(pipe, **extra):
    kwargs = dict(prompt="a red circle", height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=3.5,
                  generator=torch.Generator().manual_seed(0), output_type="np", max_sequence_length=32)  # fmt: skip
    kwargs.update(extra)
    return pipe(**kwargs).images


def reference(model, cls=FluxPipeline, **extra):
    """The same components handed to diffusers directly, with the studio's offline tokenizers."""
    from studio.engine.flux_tokenizers import flux_clip_tokenizer, t5_tokenizer

    pipe = cls(scheduler=model.scheduler, vae=model.vae, text_encoder=model.text_encoder, tokenizer=flux_clip_tokenizer(),
               text_encoder_2=model.text_encoder_2, tokenizer_2=t5_tokenizer(), transformer=model.transformer)  # fmt: skip
    return generate(pipe, **extra)


def test_every_layout_gives_the_image_diffusers_gives(tmp_path, exact):
    want = reference(exact)
    assert want.shape == (1, SIZE, SIZE, 3) and np.isfinite(want).all() and want.std() > 0
    parts = ff.write_flux_parts(exact, tmp_path / "split")
    aio = ff.write(ff.stored(ff.all_in_one_tensors(exact), torch.bfloat16), tmp_path / "aio.safetensors")
    fp8_aio = ff.write(ff.stored(ff.all_in_one_tensors(exact), ff.FP8), tmp_path / "aio-fp8.safetensors")
    scaled = ff.write(
        ff.scaled_fp8({k: v for k, v in ff.all_in_one_tensors(exact).items()}, ff.COMFY_TRANSFORMER),
        tmp_path / "scaled.safetensors",
    )
    diffusers_transformer = ff.write(
        ff.stored(exact.transformer.state_dict(), torch.bfloat16), tmp_path / "diffusers.safetensors"
    )
    t5_fp8 = ff.write(ff.stored(ff.t5_tensors(exact), ff.FP8), tmp_path / "t5xxl_fp8_e4m3fn.safetensors")
    loads = {
        "all-in-one bf16": lambda: fl.load_flux_pipeline(aio, dtype=COMPUTE),
        "all-in-one fp8": lambda: fl.load_flux_pipeline(fp8_aio, dtype=COMPUTE),
        "all-in-one scaled fp8": lambda: fl.load_flux_pipeline(scaled, dtype=COMPUTE),
        "split BFL": lambda: fl.load_flux_pipeline(
            parts.transformer, clip_l=parts.clip_l, t5=parts.t5, vae=parts.vae, dtype=COMPUTE
        ),
        "split diffusers + fp8 T5": lambda: fl.load_flux_pipeline(
            diffusers_transformer, clip_l=parts.clip_l, t5=t5_fp8, vae=parts.vae, dtype=COMPUTE
        ),
    }
    for name, load in loads.items():
        pipe = load()
        assert isinstance(pipe, FluxPipeline), name
        assert np.array_equal(generate(pipe), want), name


def test_fp8_stays_fp8_in_memory(tmp_path, exact):
    path = ff.write(ff.stored(ff.all_in_one_tensors(exact), ff.FP8), tmp_path / "aio-fp8.safetensors")
    pipe = fl.load_flux_pipeline(path, dtype=COMPUTE)
    qkv = pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert qkv.dtype == torch.float8_e4m3fn
    assert pipe.text_encoder_2.encoder.block[0].layer[0].SelfAttention.q.weight.dtype == torch.float8_e4m3fn
    assert pipe.transformer.transformer_blocks[0].attn.norm_q.weight.dtype == COMPUTE  # norms compute as they are
    generate(pipe)
    assert pipe.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn  # back after the step


def test_gguf_transformer(tmp_path, exact):
    pytest.importorskip("gguf")
    parts = ff.write_flux_parts(exact, tmp_path / "split")
    path = ff.write_gguf(exact, tmp_path / "flux1-dev-Q8_0.gguf")
    pipe = fl.load_flux_pipeline(path, clip_l=parts.clip_l, t5=parts.t5, vae=parts.vae, dtype=COMPUTE)
    weight = pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert type(weight).__name__ == "GGUFParameter" and weight.dtype == torch.uint8  # still quantized
    image = generate(pipe)
    # Q8_0 keeps 8 bits per weight with one scale per 32: close to, not equal to, the original
    assert image.shape == (1, SIZE, SIZE, 3) and np.abs(image - reference(exact)).max() < 0.1


def test_schnell_and_the_diffusers_folder(tmp_path):
    model = ff.build_tiny_flux("schnell", seed=1)
    parts = ff.write_flux_parts(model, tmp_path / "split")
    pipe = fl.load_flux_pipeline(parts.transformer, clip_l=parts.clip_l, t5=parts.t5, vae=parts.vae, dtype=COMPUTE)
    assert not pipe.transformer.config.guidance_embeds and not pipe.scheduler.config.use_dynamic_shifting
    image = generate(pipe, guidance_scale=0.0)
    pipe.save_pretrained(tmp_path / "folder")
    again = fl.load_flux_pipeline(tmp_path / "folder", dtype=COMPUTE)
    assert np.array_equal(generate(again, guidance_scale=0.0), image)


def test_modes_switch_on_the_same_components(tmp_path, exact):
    aio = ff.write(ff.stored(ff.all_in_one_tensors(exact), torch.bfloat16), tmp_path / "aio.safetensors")
    pipe = fl.load_flux_pipeline(aio, dtype=COMPUTE)
    init = Image.fromarray((np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))
    img2img = fl.mode_pipeline(pipe, "img2img")
    inpaint = fl.mode_pipeline(pipe, "inpaint")
    assert isinstance(img2img, FluxImg2ImgPipeline) and isinstance(inpaint, FluxInpaintPipeline)
    assert img2img.transformer is pipe.transformer and inpaint.vae is pipe.vae  # nothing reloaded or copied
    assert fl.mode_pipeline(img2img, "txt2img").transformer is pipe.transformer
    out = generate(img2img, image=init, strength=0.6)
    assert np.array_equal(out, reference(exact, FluxImg2ImgPipeline, image=init, strength=0.6))
    out = generate(inpaint, image=init, mask_image=mask, strength=1.0)
    assert out.shape == (1, SIZE, SIZE, 3)


def test_fill_model_runs_every_mode_through_fill(tmp_path):
    model = ff.build_tiny_flux("fill", seed=2)
    aio = ff.write(ff.stored(ff.all_in_one_tensors(model), torch.bfloat16), tmp_path / "fill.safetensors")
    pipe = fl.load_flux_pipeline(aio, dtype=COMPUTE)
    assert isinstance(pipe, FluxFillPipeline) and fl.mode_pipeline(pipe, "inpaint") is pipe
    init = Image.new("RGB", (SIZE, SIZE), (200, 30, 30))
    mask = Image.new("L", (SIZE, SIZE), 255)
    image = generate(pipe, image=init, mask_image=mask, guidance_scale=30.0)
    assert image.shape == (1, SIZE, SIZE, 3) and np.isfinite(image).all()


def test_missing_or_wrong_parts_are_one_sentence(tmp_path, exact):
    parts = ff.write_flux_parts(exact, tmp_path / "split")
    with pytest.raises(StudioError, match="needs the T5-XXL text encoder") as caught:
        fl.load_flux_pipeline(parts.transformer, clip_l=parts.clip_l, vae=parts.vae)
    assert "models/text_encoders" in caught.value.hint
    with pytest.raises(StudioError, match="is not a T5-XXL text encoder"):
        fl.load_flux_pipeline(parts.transformer, clip_l=parts.clip_l, t5=parts.clip_l, vae=parts.vae)
    other = ff.build_tiny_flux("dev")
    config = ff.T5Config(vocab_size=32128, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
    config.feed_forward_proj, config.dense_act_fn, config.is_gated_act = "gated-gelu", "gelu_new", True
    other.text_encoder_2 = ff.T5EncoderModel(config)
    narrow = ff.write(ff.stored(ff.t5_tensors(other), torch.float16), tmp_path / "t5-narrow.safetensors")
    with pytest.raises(StudioError, match="T5-XXL text encoder chosen for .* is 16 wide; this Flux model reads 32"):
        fl.load_flux_pipeline(parts.transformer, clip_l=parts.clip_l, t5=narrow, vae=parts.vae)


def test_rope_axes_fit_the_head():
    assert fl.rope_axes(128) == [16, 56, 56]
    for head in (16, 32, 64, 96):
        axes = fl.rope_axes(head)
        assert sum(axes) == head and all(a % 2 == 0 and a > 0 for a in axes)
