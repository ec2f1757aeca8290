"""Finding a Flux transformer's parts by header in ComfyUI's folders, and what they cost in memory."""

from studio.core.models import flux_detect as fd
from studio.core.models.flux_parts import find_parts, search_folders
from studio.core.models.model_detect import inspect_model
from studio.engine.memory import needed_bytes
from tests import flux_files as ff


def _tree(tmp_path):
    model = ff.build_tiny_flux("dev")
    parts = ff.write_flux_parts(model, tmp_path / "scratch")
    models = tmp_path / "ComfyUI" / "models"
    for folder in ("diffusion_models", "text_encoders", "vae"):
        (models / folder).mkdir(parents=True)
    transformer = parts.transformer.rename(models / "diffusion_models" / "my-finetune.safetensors")
    # names say nothing: the headers do
    parts.clip_l.rename(models / "text_encoders" / "a.safetensors")
    parts.t5.rename(models / "text_encoders" / "b.safetensors")
    parts.vae.rename(models / "vae" / "c.safetensors")
    fp8_t5 = ff.write(ff.stored(ff.t5_tensors(model), ff.FP8), models / "text_encoders" / "d.safetensors")
    return model, models, transformer, fp8_t5


def test_parts_are_found_by_what_they_are_and_named(tmp_path):
    _, models, transformer, _ = _tree(tmp_path)
    assert models / "text_encoders" in search_folders(transformer)
    parts = find_parts(fd.inspect_flux_path(transformer))
    assert not parts.missing
    assert (parts.path(fd.CLIP_L).name, parts.path(fd.T5).name, parts.path(fd.VAE).name) == (
        "a.safetensors", "b.safetensors", "c.safetensors")  # bf16 transformer: the wider T5 first
    assert "a.safetensors" in parts.note and "T5-XXL" in parts.note


def test_an_fp8_transformer_prefers_the_fp8_text_encoder(tmp_path):
    model, models, transformer, fp8_t5 = _tree(tmp_path)
    small = ff.write(ff.stored(ff.transformer_bfl(model), ff.FP8), models / "diffusion_models" / "fp8.safetensors")
    parts = find_parts(fd.inspect_flux_path(small))
    assert parts.path(fd.T5) == fp8_t5


def test_the_estimate_counts_each_part_at_its_stored_precision(tmp_path):
    model, models, transformer, _ = _tree(tmp_path)
    parts = find_parts(fd.inspect_flux_path(transformer))
    info = inspect_model(transformer)
    files = [parts.model, *parts.files.values()]
    # bf16 and fp16 parts double on the CPU (fp32) and stay as they are on a GPU (bf16)
    assert needed_bytes(info, "cuda", parts) == sum(f.size_bytes for f in files if f.dtype != "fp32") + sum(
        f.size_bytes // 2 for f in files if f.dtype == "fp32")
    small = ff.write(ff.stored(ff.transformer_bfl(model), ff.FP8), tmp_path / "fp8.safetensors")
    fp8 = fd.inspect_flux_path(small)
    assert needed_bytes(inspect_model(small), "cpu") == fp8.size_bytes  # fp8 stays fp8
