"""LoRA tags read as A1111 reads them, the files they name, and the family a file is made for."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.generation.lora_tags import (
    LoraTag,
    find_lora,
    inspect_lora,
    lora_hash,
    lora_tags,
    missing_loras,
    scan_loras,
)
from studio.core.models.family import Family
from tests.lora_files import write_family_lora, write_header_only_lora


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("a cat <lora:style:0.8>", [LoraTag("style", 0.8)]),
        ("<lora:style>", [LoraTag("style", 1.0)]),
        ("<lora:my cool style:1>, forest", [LoraTag("my cool style", 1.0)]),  # spaces in names
        ("<lora:neg:-0.5>", [LoraTag("neg", -0.5)]),
        ("<lora:a:.5> x <lora:b:1.25>", [LoraTag("a", 0.5), LoraTag("b", 1.25)]),
        ("<lora:a:0.8:0.3>", [LoraTag("a", 0.8, 0.3)]),  # text encoders, then UNet
        ("<lora:a:te=0.4:unet=0.9>", [LoraTag("a", 0.4, 0.9)]),
        ("<lora:a:unet=0.9>", [LoraTag("a", 1.0, 0.9)]),
        ("<lyco:old:0.7>", [LoraTag("old", 0.7)]),  # A1111's alias for LyCORIS prompts
        ("<hypernet:h:1> <lora::1> plain text", []),  # not LoRAs; a tag without a name
        ("<lora:a:0>", [LoraTag("a", 0.0)]),
        # The kind is case-sensitive, as A1111's registry lookup: these name no network.
        ("<LORA:x:0.5> <Lora:y> <LyCO:z> <lora:w>", [LoraTag("w", 1.0)]),
    ],
)
def test_tags_as_a1111_reads_them(prompt, expected):
    assert lora_tags(prompt) == expected


@pytest.mark.parametrize(
    "prompt, weight, unet, words",
    [
        ("<lora:hot:3>", 2.0, None, "weight 3 is outside -2..2; used 2"),
        ("<lora:hot:-5.5>", -2.0, None, "outside -2..2; used -2"),
        ("<lora:hot:1:9>", 1.0, 2.0, "UNet weight 9 is outside -2..2; used 2"),
        ("<lora:hot:lots>", 1.0, None, "'lots' is not a number; used 1"),
        ("<lora:hot:nan>", 1.0, None, "is not a number; used 1"),
        ("<lora:hot:1:1:8>", 1.0, 1.0, "dyn setting"),
    ],
)
def test_odd_weights_are_fixed_with_a_note(prompt, weight, unet, words):
    [tag] = lora_tags(prompt)
    assert (tag.weight, tag.unet_weight) == (weight, unet)
    assert words in tag.note and tag.note.startswith("LoRA hot:")


def test_weight_zero_is_off_only_when_both_parts_are_zero():
    assert LoraTag("a", 0.0).is_off and LoraTag("a", 0.0, 0.0).is_off
    assert not LoraTag("a", 0.0, 0.5).is_off and not LoraTag("a", 0.5, 0.0).is_off


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>:lora =te-.1x ,\\()[]")), max_size=60))
def test_any_prompt_parses_without_raising(prompt):
    for tag in lora_tags(prompt):
        assert tag.name and -2 <= tag.weight <= 2 and -2 <= tag.unet <= 2


def test_find_lora_by_stem_in_folders_and_subfolders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_family_lora(second / "styles" / "deep" / "My Style.safetensors", "sd1")
    write_family_lora(second / "top.safetensors", "sd1")
    write_family_lora(first / "top.safetensors", "sd1")
    (first / "pickled.pt").write_bytes(b"x")
    write_family_lora(first / ".hidden" / "secret.safetensors", "sd1")
    folders = [first, second, tmp_path / "missing"]
    assert find_lora("top", folders) == first / "top.safetensors"  # the first folder wins
    assert find_lora("My Style", folders) == second / "styles" / "deep" / "My Style.safetensors"
    assert find_lora("my style", folders) == second / "styles" / "deep" / "My Style.safetensors"  # case, as on Windows
    assert find_lora("pickled", folders) is None  # .safetensors only
    assert find_lora("secret", folders) is None
    assert find_lora("../second/top", folders) is None
    assert missing_loras("<lora:top:1> <lora:gone:1> <lora:My Style:0.5> <lora:gone:2>", folders) == ["gone"]


def test_exact_case_wins_over_folded(tmp_path):
    write_family_lora(tmp_path / "a" / "style.safetensors", "sd1")
    write_family_lora(tmp_path / "b" / "Style.safetensors", "sd1")
    assert find_lora("Style", [tmp_path / "a", tmp_path / "b"]) == tmp_path / "b" / "Style.safetensors"


@pytest.mark.parametrize("family, expected", [("sd1", Family.SD1), ("sd2", Family.SD2), ("sdxl", Family.SDXL)])
def test_family_from_shapes(tmp_path, family, expected):
    lora = inspect_lora(write_family_lora(tmp_path / "x.safetensors", family))
    assert lora.family is expected and lora.label == expected.label and not lora.other


@pytest.mark.parametrize(
    "tensors, metadata, family, other",
    [
        ({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 32)}, None, Family.SDXL, ""),
        ({"lora_unet_x.lora_down.weight": (4, 32)}, {"ss_base_model_version": "sdxl_base_v1-0"}, Family.SDXL, ""),
        ({"lora_unet_x.lora_down.weight": (4, 32)}, {"ss_v2": "True"}, Family.SD2, ""),
        ({"lora_unet_x.lora_down.weight": (4, 32)}, {"modelspec.architecture": "stable-diffusion-v1/lora"}, Family.SD1, ""),
        ({"lora_unet_x.lora_down.weight": (4, 32)}, None, None, ""),  # tiny: can't tell
        ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 32)}, None, Family.FLUX, ""),
        # diffusers/peft naming of a cross-attention: 1024 wide is SD 2.x
        ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 1024)}, None, Family.SD2, ""),
    ],
)
def test_family_from_names_and_metadata(tmp_path, tensors, metadata, family, other):
    lora = inspect_lora(write_header_only_lora(tmp_path / "x.safetensors", tensors, metadata))
    assert (lora.family, lora.other) == (family, other)


def test_scan_lists_names_and_families_and_skips_bad_files(tmp_path):
    write_family_lora(tmp_path / "loras" / "b style.safetensors", "sdxl")
    write_family_lora(tmp_path / "loras" / "sub" / "A style.safetensors", "sd1")
    (tmp_path / "loras" / "broken.safetensors").write_bytes(b"\x00" * 4)
    write_family_lora(tmp_path / "more" / "b style.safetensors", "sd1")  # shadowed by the first folder's
    found, skipped = scan_loras([tmp_path / "loras", tmp_path / "more", tmp_path / "nowhere"])
    assert [(f.name, f.label) for f in found] == [("b style", "SDXL"), ("A style", "SD 1.x")]
    assert len(skipped) == 1 and "broken.safetensors" in skipped[0]


def test_lora_hash_is_a1111s_addnet_hash(tmp_path):
    path = write_family_lora(tmp_path / "x.safetensors", "sd1")
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    assert lora_hash(path) == hashlib.sha256(data[8 + header_length:]).hexdigest()
    assert lora_hash(path) != hashlib.sha256(data).hexdigest()
