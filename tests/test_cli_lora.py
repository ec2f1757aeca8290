"""`studio generate` with LoRAs: found beside the saved model folders and in --lora-dir; a
missing one is a note on stderr and the image is still made."""

import pytest

from studio.core.generation.settings import Settings, save_settings
from tests.test_cli import _run


@pytest.mark.slow
def test_generate_finds_loras_and_names_the_missing_one(tiny_model_dir, tmp_path, studio_home):
    from studio.core.storage.paths import settings_file
    from studio.dev.bench_lora import make_kohya_lora
    from studio.engine.tiny_model import build_tiny_pipeline

    pipe = build_tiny_pipeline(0)
    webui = tmp_path / "webui" / "models"
    make_kohya_lora(pipe, webui / "Lora" / "style one.safetensors", seed=1)
    make_kohya_lora(pipe, tmp_path / "more" / "style_two.safetensors", seed=2)
    (webui / "Stable-diffusion").mkdir()
    save_settings(Settings(model_dirs=[str(webui / "Stable-diffusion")]), settings_file())
    out = tmp_path / "out.png"
    prompt = "a red circle <lora:style one:0.8> <lora:style_two:0.5> <lora:gone:1>"
    result = _run("generate", "--prompt", prompt, "--model", str(tiny_model_dir), "--steps", "2", "--size", "64x64",
                  "--lora-dir", str(tmp_path / "more"), "--out", str(out), env_home=studio_home)
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "LoRA gone was not found" in notes[0], result.stderr
