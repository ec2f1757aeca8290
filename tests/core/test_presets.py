import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from studio.core.generation.samplers import SAMPLER_NAMES
from studio.core.generation.settings import Settings
from studio.core.storage.presets import (
    PRESET_FIELDS,
    Preset,
    PresetError,
    PresetStore,
    apply_preset,
    apply_style,
    builtin_presets_dir,
    parse_preset_file,
    preset_from_dict,
    safe_file_stem,
    style_of,
    wrap_prompt,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    s = PresetStore(builtin_dir=builtin_presets_dir(), user_dir=tmp_path / "user")
    assert s.load() == []
    return s


def test_builtins_ship_and_are_valid():
    files = sorted(builtin_presets_dir().glob("*.json"))
    assert len(files) >= 4
    for path in files:
        preset, warnings = preset_from_dict(json.loads(path.read_text()), builtin=True)
        assert warnings == [], warnings
        assert json.loads(path.read_text())["format"] == 1


def test_builtin_names_and_tuning(store):
    names = store.names()
    for name in ("Photographic", "Digital painting", "Fast draft", "Demo shapes"):
        assert name in names
    fast = store.get("fast draft")  # names compare case-insensitively
    assert fast.values["sampler"] == "DPM++ 2M Karras" and fast.values["steps"] <= 15
    demo = store.get("Demo shapes")
    assert (demo.values["width"], demo.values["height"]) == (64, 64)
    assert store.is_builtin("Photographic")


def test_apply_sets_fields_and_leaves_the_prompts_to_the_style():
    preset = Preset("P", {"prompt": "photo of {prompt}, 35mm", "negative_prompt": "{prompt}, blurry", "steps": 9,
                          "sampler": "Euler a", "seed_mode": "fixed", "seed": 77})
    before = Settings(prompt="a cat", negative_prompt="dog", steps=20, width=768, batch_count=3)
    after = apply_preset(preset, before)
    assert (after.prompt, after.negative_prompt) == ("a cat", "dog")  # never pasted into the prompt box
    assert (after.steps, after.sampler, after.seed, after.random_seed) == (9, "Euler a", 77, False)
    assert (after.width, after.batch_count) == (768, 3)  # not in the preset: untouched
    assert before.prompt == "a cat" and before.steps == 20  # the input is not mutated
    style = style_of(preset)
    assert apply_style(style, "a cat", "dog") == ("photo of a cat, 35mm", "dog, blurry")


def test_style_without_placeholder_appends_and_empty_negative_is_clean():
    style = style_of(Preset("P", {"prompt": "oil painting", "negative_prompt": "{prompt}, blurry"}))
    assert apply_style(style, "a cat", "") == ("a cat, oil painting", "blurry")


def test_wrapping_twice_is_wrapping_once():
    cinematic = "cinematic still of {prompt}, dramatic lighting"
    once = wrap_prompt(cinematic, "a cat")
    assert once == "cinematic still of a cat, dramatic lighting"
    assert wrap_prompt(cinematic, once) == once  # a prompt restored from a styled image
    assert wrap_prompt("oil painting", wrap_prompt("oil painting", "a cat")) == "a cat, oil painting"
    assert wrap_prompt("{prompt}, photo", wrap_prompt("{prompt}, photo", "")) == "photo"
    assert wrap_prompt("", "a cat") == "a cat"


def test_a_style_with_an_empty_negative_adds_none():
    style = style_of(Preset("Only prompt", {"prompt": "{prompt}, watercolor", "negative_prompt": ""}))
    assert apply_style(style, "a cat", "blurry") == ("a cat, watercolor", "blurry")
    assert style_of(Preset("Fast", {"steps": 12})) is None  # settings only: no style


def test_seed_mode_random_turns_random_on():
    after = apply_preset(Preset("P", {"seed_mode": "random"}), Settings(random_seed=False, seed=3))
    assert after.random_seed is True and after.seed == 3


def test_save_chosen_fields_then_reload(store, tmp_path):
    settings = Settings(prompt="{prompt}, watercolor", steps=33, guidance=4.5, sampler="Heun", random_seed=False, seed=9)
    saved = store.save("Water", settings, ["prompt", "steps", "seed_mode", "seed"])
    assert saved.values == {"prompt": "{prompt}, watercolor", "steps": 33, "seed_mode": "fixed", "seed": 9}
    fresh = PresetStore(builtin_presets_dir(), tmp_path / "user")
    assert fresh.load() == []
    assert fresh.get("water") == saved
    data = json.loads((tmp_path / "user" / "Water.json").read_text())
    assert data["format"] == 1 and data["name"] == "Water" and "guidance" not in data


def test_user_preset_overrides_builtin_and_delete_reveals_it(store):
    store.save("Photographic", Settings(steps=5), ["steps"])
    assert store.get("Photographic").values == {"steps": 5}
    assert not store.is_builtin("Photographic")
    assert store.names().count("Photographic") == 1
    store.delete("Photographic")
    assert store.is_builtin("Photographic") and store.get("Photographic").values["steps"] == 30


def test_builtins_cannot_be_deleted_or_renamed(store):
    with pytest.raises(PresetError, match="built in"):
        store.delete("Fast draft")
    with pytest.raises(PresetError, match="built in"):
        store.rename("Fast draft", "Mine")
    assert store.get("Fast draft") is not None


def test_rename_moves_file_and_refuses_clash(store, tmp_path):
    store.save("One", Settings(steps=3), ["steps"])
    store.save("Two", Settings(steps=4), ["steps"])
    with pytest.raises(PresetError, match="already exists"):
        store.rename("One", "two")
    renamed = store.rename("One", "Uno")
    assert renamed.values == {"steps": 3} and store.get("One") is None
    fresh = PresetStore(builtin_presets_dir(), tmp_path / "user")
    fresh.load()
    assert fresh.get("Uno").values == {"steps": 3} and fresh.get("One") is None


def test_second_save_keeps_bak_of_previous(store, tmp_path):
    store.save("K", Settings(steps=3), ["steps"])
    store.save("K", Settings(steps=4), ["steps"])
    user = tmp_path / "user"
    assert json.loads((user / "K.json").read_text())["steps"] == 4
    assert json.loads((user / "K.json.bak").read_text())["steps"] == 3


@pytest.mark.parametrize("evil", ["../../etc/passwd", "..", "a/b\\c", "x\0y", "/abs/path", "CON", "nul.txt", "...", " . "])
def test_names_never_escape_the_folder(tmp_path, evil):
    store = PresetStore(tmp_path / "none", tmp_path / "user")
    store.load()
    try:
        store.save(evil, Settings(steps=2), ["steps"])
    except PresetError:
        pass  # rejected outright (NUL, blank names) is fine too
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parent == tmp_path / "user" for p in written), written
    for p in written:
        assert p.stem.split(".")[0].upper() not in {"CON", "NUL"}


def test_safe_file_stem():
    for evil in ("../x", "a/../../b", "..\\..\\c", "x\0y"):
        stem = safe_file_stem(evil)
        assert not {"/", "\\", "\0"} & set(stem) and ".." not in stem and stem
    assert safe_file_stem("CON") == "_CON"
    assert safe_file_stem("Été 日本") == "Été 日本"
    assert safe_file_stem("") == "preset"


@pytest.mark.parametrize("name", ["COM¹", "com²", "LPT³", "COM0", "LPT0", "COM9", "lpt1", "AUX", "nul", "PRN",
                                  "COM¹.txt", "CON.tar.gz", "NUL .json", "Con ", "LPT².x"])
def test_every_windows_reserved_device_name_is_made_safe(name):
    stem = safe_file_stem(name)
    assert stem.startswith("_") and stem[1:].casefold() == name.strip(" .").casefold()


@pytest.mark.parametrize("name", ["COM10", "CONSOLE", "LPT", "COMA", "my CON", "nul-ish"])
def test_names_that_only_look_reserved_are_kept(name):
    assert safe_file_stem(name) == name


def test_two_names_with_same_stem_get_different_files(store, tmp_path):
    store.save("a/b", Settings(steps=2), ["steps"])
    store.save("a\\b", Settings(steps=3), ["steps"])
    fresh = PresetStore(builtin_presets_dir(), tmp_path / "user")
    fresh.load()
    assert fresh.get("a/b").values["steps"] == 2 and fresh.get("a\\b").values["steps"] == 3


def test_invalid_user_file_set_aside_reported_once_others_load(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "good.json").write_text(json.dumps({"format": 1, "name": "Good", "steps": 12}))
    (user / "broken.json").write_text("{not json")
    (user / "list.json").write_text("[1, 2]")
    store = PresetStore(tmp_path / "none", user)
    warnings = store.load()
    assert len(warnings) == 2 and all("could not be read" in w for w in warnings)
    assert store.names() == ["Good"]
    assert len(list(user.glob("broken.json.invalid-*"))) == 1
    assert store.load() == []  # reported once: the bad file is out of the way now


def test_bad_fields_are_dropped_with_a_warning(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "p.json").write_text(json.dumps({"format": 1, "name": "P", "steps": 9999, "sampler": "Nope", "guidance": 5}))
    store = PresetStore(tmp_path / "none", user)
    warnings = store.load()
    assert store.get("P").values == {"guidance": 5.0}
    assert any("steps" in w for w in warnings) and any("sampler" in w for w in warnings)


def test_newer_format_is_refused_not_misread(tmp_path):
    with pytest.raises(PresetError, match="format"):
        preset_from_dict({"format": 99, "name": "Future"})


def test_damaged_file_comes_back_from_bak(store, tmp_path):
    store.save("K", Settings(steps=3), ["steps"])
    store.save("K", Settings(steps=4), ["steps"])
    (tmp_path / "user" / "K.json").write_text("")  # power loss left an empty file
    fresh = PresetStore(builtin_presets_dir(), tmp_path / "user")
    warnings = fresh.load()
    assert fresh.get("K").values == {"steps": 3}
    assert "restored from its backup" in warnings[0]


def test_import_a1111_styles_csv(store, tmp_path):
    csv_file = tmp_path / "styles.csv"
    csv_file.write_text(
        'name,prompt,negative_prompt\n'
        'Noir,"{prompt}, film noir, black and white","color, ""bright"""\n'
        ',orphan,\n'
        'Plain,"ink sketch",\n', encoding="utf-8")
    imported, warnings = store.import_file(csv_file)
    assert [p.name for p in imported] == ["Noir", "Plain"]
    assert store.get("Noir").values == {"prompt": "{prompt}, film noir, black and white", "negative_prompt": 'color, "bright"'}
    assert len(warnings) == 1 and "Row 3" in warnings[0]


def test_import_fooocus_style_list(store, tmp_path):
    path = tmp_path / "sdxl_styles_fooocus.json"
    path.write_text(json.dumps([
        {"name": "Fooocus Sharp", "prompt": "cinematic still {prompt} . emotional, harmonious",
         "negative_prompt": "anime, cartoon"},
        {"name": "Fooocus Masterpiece", "prompt": "(masterpiece), (best quality), {prompt}"},
        "garbage",
    ]))
    imported, warnings = store.import_file(path)
    assert {p.name for p in imported} == {"Fooocus Sharp", "Fooocus Masterpiece"}
    assert len(warnings) == 1
    prompt, _ = apply_style(style_of(store.get("Fooocus Sharp")), "a cat", "")
    assert prompt == "cinematic still a cat . emotional, harmonious"


def test_export_then_import_round_trip(store, tmp_path):
    store.save("Mine", Settings(guidance=3.5, width=640), ["guidance", "width"])
    out = store.export_file("Mine", tmp_path / "exported.json")
    store.delete("Mine")
    imported, _ = store.import_file(out)
    assert imported[0].name == "Mine" and store.get("Mine").values == {"guidance": 3.5, "width": 640}


def test_import_bad_file_gives_clear_error(store, tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PresetError, match="x.json"):
        store.import_file(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PresetError, match="no presets"):
        store.import_file(tmp_path / "empty.csv")


# -- property-based: the loader never crashes --------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
preset_like = st.fixed_dictionaries(
    {},
    optional={"format": json_values | st.just(1), "name": st.text(max_size=30) | json_values,
              **{k: json_values for k in PRESET_FIELDS},
              "sampler": st.sampled_from(SAMPLER_NAMES) | json_values},
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=preset_like | json_values)
def test_preset_from_dict_never_crashes(data):
    try:
        preset, warnings = preset_from_dict(data)
    except PresetError as exc:
        assert str(exc)
        return
    assert preset.name.strip() == preset.name and preset.name
    assert set(preset.values) <= set(PRESET_FIELDS)
    apply_preset(preset, Settings())  # and a loaded preset always applies


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | preset_like.map(lambda d: json.dumps(d, allow_nan=True).encode()), suffix=st.sampled_from([".json", ".csv"]))
def test_loader_and_import_tolerate_any_bytes(tmp_path, content, suffix):
    folder = tmp_path / f"u{time.monotonic_ns()}"
    folder.mkdir()
    (folder / f"a{suffix}").write_bytes(content)
    (folder / "ok.json").write_text(json.dumps({"format": 1, "name": "OK"}))
    store = PresetStore(tmp_path / "none", folder)
    warnings = store.load()
    assert "OK" in store.names() or any("OK" in w for w in warnings) or store.get("ok")
    assert all(isinstance(w, str) and w for w in warnings)
    try:
        presets, _ = parse_preset_file(folder / f"a{suffix}")
        assert presets
    except PresetError as exc:
        assert "a" + suffix in str(exc) or "no presets" in str(exc)


# -- crash safety ------------------------------------------------------------------------------
CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from studio.core.storage.presets import PresetStore
    from studio.core.generation.settings import Settings
    store = PresetStore(Path(sys.argv[1]) / "none", Path(sys.argv[1]) / "user")
    store.load()
    if sys.argv[2] == "die-in-write":
        real_fsync = os.fsync
        calls = []
        def dying_fsync(fd):
            calls.append(fd)
            if len(calls) == 2:  # 1st: the .bak; 2nd: the new preset, written but not yet renamed
                os._exit(9)
            real_fsync(fd)
        os.fsync = dying_fsync
        store.save("Keep", Settings(steps=99, prompt="new"), ["steps", "prompt"])
    else:
        print("ready", flush=True)
        n = 0
        while True:
            n += 1
            store.save("Keep", Settings(steps=1 + n % 150, prompt="x" * (n % 5000)), ["steps", "prompt"])
    """
)


def _run_crash(tmp_path, mode, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path), mode], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_process_dying_mid_save_leaves_previous_preset_intact(tmp_path):
    store = PresetStore(tmp_path / "none", tmp_path / "user")
    store.load()
    store.save("Keep", Settings(steps=7, prompt="old"), ["steps", "prompt"])
    before = (tmp_path / "user" / "Keep.json").read_text()
    with _run_crash(tmp_path, "die-in-write") as proc:  # closes its pipes (a ResourceWarning otherwise)
        assert proc.wait(timeout=60) == 9, proc.stderr.read()
    assert (tmp_path / "user" / "Keep.json").read_text() == before
    fresh = PresetStore(tmp_path / "none", tmp_path / "user")
    assert fresh.load() == []  # leftover temp files are ignored
    assert fresh.get("Keep").values == {"steps": 7, "prompt": "old"}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_during_repeated_saves_never_leaves_a_broken_preset(tmp_path):
    store = PresetStore(tmp_path / "none", tmp_path / "user")
    store.load()
    store.save("Keep", Settings(steps=7), ["steps"])
    with _run_crash(tmp_path, "loop") as proc:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    fresh = PresetStore(tmp_path / "none", tmp_path / "user")
    assert fresh.load() == []
    assert 1 <= fresh.get("Keep").values["steps"] <= 150


def test_strength_and_model_apply_when_settings_has_them():
    after = apply_preset(Preset("P", {"strength": 0.35, "model": "/models/x"}), Settings(model="/models/y"))
    assert after.model == "/models/x"
    if hasattr(Settings(), "strength"):
        assert after.strength == 0.35
