"""The model library scan: A1111 and ComfyUI folder layouts, mixed files, nothing that crashes."""

import torch

from studio.core.models.model_hash import file_sha256
from studio.core.models.model_library import (
    find_by_hash_or_name,
    lora_folders,
    model_folders,
    scan_models,
    scan_vaes,
    vae_folders,
)
from studio.engine.tiny_model import build_tiny_family, save_tiny_family
from tests import checkpoint_files as files


def test_a1111_layout_lists_models_with_family_and_finds_vae_and_lora_beside(tmp_path):
    root = tmp_path / "webui" / "models"
    checkpoints = root / "Stable-diffusion"
    files.write_single_file(build_tiny_family("sdxl"), checkpoints / "xl" / "ponyish.safetensors", dtype=torch.float16)
    files.write_single_file(build_tiny_family("sd1"), checkpoints / "anything.safetensors", dtype=torch.float16)
    save_tiny_family(checkpoints / "diffusers-sd2", "sd2")
    files.write_kohya_lora(checkpoints / "a-lora-by-mistake.safetensors")
    (checkpoints / "notes.txt").write_text("not a model")
    (checkpoints / "broken.safetensors").write_bytes(b"\0" * 100)
    (root / "VAE").mkdir()
    files.write_vae_only(root / "VAE" / "sdxl_vae.safetensors")
    (root / "Lora").mkdir()

    folders = model_folders([str(checkpoints)])
    models, skipped = scan_models(folders)
    found = {m.name: m.label for m in models}
    assert found == {"anything": "SD 1.x", "diffusers-sd2": "SD 2.x v", "ponyish": "SDXL"}
    assert any("is a LoRA" in line for line in skipped) and any("broken.safetensors" in line for line in skipped)
    assert "SDXL" in next(m.display for m in models if m.name == "ponyish")
    assert [p.name for p in scan_vaes(vae_folders(folders))] == ["sdxl_vae.safetensors"]
    assert root / "Lora" in lora_folders(folders)


def test_missing_or_unreadable_folders_scan_to_nothing(tmp_path):
    models, skipped = scan_models([tmp_path / "nope"])
    assert models == [] and skipped == []


def test_dropped_image_finds_its_model_by_hash_then_name(tmp_path):
    path = files.write_single_file(build_tiny_family("sd1"), tmp_path / "m" / "mymodel.safetensors", dtype=torch.float16)
    models, _ = scan_models([tmp_path / "m"])
    assert find_by_hash_or_name(models, "", "mymodel").path == str(path)
    assert find_by_hash_or_name(models, "0123456789", "other") is None
    short = file_sha256(path)[:10]  # hashed once (and cached), as the engine does on load
    assert find_by_hash_or_name(models, short, "renamed-elsewhere").path == str(path)


def test_a_dropped_a1111_image_names_its_model_by_hash_or_name(tmp_path, studio_home):
    from studio.core.formats.metadata import from_a1111
    from studio.core.models.model_library import model_of_image

    folder = tmp_path / "Stable-diffusion"
    path = files.write_single_file(build_tiny_family("sd1"), folder / "dreamy_v3.safetensors", dtype=torch.float16)
    short = file_sha256(path)[:10]
    common = "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"
    by_hash = from_a1111(f"{common}, Model hash: {short}, Model: renamed")
    by_name = from_a1111("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Model: dreamy_v3")
    missing = from_a1111(f"{common}, Model hash: 0123456789, Model: other")
    assert model_of_image(by_hash, [str(folder)])[0].path == str(path)
    assert model_of_image(by_name, [str(folder)])[0].path == str(path)
    assert model_of_image(missing, [str(folder)]) == (None, "other")
