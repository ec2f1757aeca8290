"""Fuzzers with fixed seeds: metadata chunks, preset files, state files and requests. Each runs a
few thousand cases in seconds; none may raise anything but its documented error, and whatever
they let through must be in range for the widgets (Qt's int is 32 bits)."""

from __future__ import annotations

import json
import random
import time

import pytest

from studio.core.formats.metadata import apply_fields, parse_chunks, read_metadata
from studio.core.generation.request import GenerationRequest, InvalidRequest
from studio.core.generation.settings import Settings, load_settings, settings_from_request
from studio.core.storage.history import History
from studio.core.storage.outputs import png_bytes
from studio.core.storage.presets import PresetError, PresetStore, parse_preset_file, preset_from_dict
from studio.core.storage.session import load_session

QT_INT = 2**31 - 1
SEEDS = (1, 2)  # fixed: a failure replays exactly


# -- generators ------------------------------------------------------------------------------
def _number(rng: random.Random):
    return rng.choice([0, 1, -1, 7, 2**31, -(2**31) - 1, 2**53 + 1, 2**64, 10**30, 0.5, 2.5, -0.0, 1e308,
                       float("inf"), float("-inf"), float("nan"), rng.randint(-10**6, 10**6), rng.random() * 100])


def _text(rng: random.Random) -> str:
    pieces = ["a cat", "", " ", "\x00", "\ud800", "é", "{prompt}", "Steps: 20", ",", ":", "\n", "<lora:x:1>",
              "(((", ")", "\\", '"', "BREAK", "x" * rng.choice([1, 100, 5000]), "🙂", "\u202e"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))


def _json_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice([_number(rng), _text(rng), None, True, False])
    if roll < 0.6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS + [_text(rng)]): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}


KEYS = ["prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "sampler", "batch_count",
        "mode", "strength", "init_image", "mask", "mask_blur", "inpaint_padding", "model", "format", "name",
        "seed_mode", "random_seed", "device", "presets", "settings", "canvas_image", "saved_at", "request", "path",
        "time", "clip_skip", "vae", "subseed", "hires_scale"]
VALID_REQUEST = GenerationRequest(prompt="a red circle", negative_prompt="blurry", steps=20, seed=42).to_dict()
A1111 = ("a cat, (masterpiece:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
         "Seed: 42, Size: 512x512, Model hash: abc, Denoising strength: 0.5, Mask blur: 4")


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        action = rng.random()
        position = rng.randint(0, len(chars))
        if action < 0.3 and chars:
            del chars[min(position, len(chars) - 1)]
        elif action < 0.6:
            chars.insert(position, rng.choice(list(",:\n\"{}[]0123456789e-+. xN\\") + ["Steps: ", "Size: 9999999999x"]))
        elif action < 0.8:
            chars[position:position] = list(str(_number(rng)))
        else:
            chars = chars[:position]  # truncated
    return "".join(chars)


def _request_dict(rng: random.Random):
    data = dict(VALID_REQUEST)
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(KEYS)
        data[key] = _json_value(rng) if rng.random() < 0.5 else _number(rng)
    return data


def _chunk_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return _mutate(rng, A1111)
    if roll < 0.7:
        return _mutate(rng, json.dumps(_request_dict(rng)))
    if roll < 0.8:
        return "[" * rng.choice([10, 3000]) + "]" * rng.choice([0, 10])  # deep nesting
    return json.dumps(_json_value(rng))


# -- metadata ----------------------------------------------------------------------------------
def _assert_in_qt_range(fields: dict) -> None:
    for key, value in fields.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert -QT_INT - 1 <= value <= 2**32, (key, value)  # seeds go to 2^32-1 (a double spin box)


@pytest.mark.parametrize("seed", SEEDS)
def test_metadata_chunks_never_raise_and_stay_in_range(seed):
    rng = random.Random(seed)
    started = time.perf_counter()
    keys = ["parameters", "studio_request", "prompt", "workflow", "invokeai_metadata", "fooocus_scheme", "Comment"]
    for _ in range(2000):
        chunks = {rng.choice(keys): _chunk_text(rng) for _ in range(rng.randint(1, 3))}
        metadata = parse_chunks(chunks)  # documented: never raises
        _assert_in_qt_range(metadata.fields)
        if metadata.request is not None:
            _assert_in_qt_range(metadata.request.to_dict())
            try:
                metadata.request.validated()  # a recalled recipe may be incomplete (no input image)...
            except InvalidRequest:
                pass  # ...which Generate reports; nothing else may escape
        apply_fields(Settings(), metadata.fields, "all")
    assert time.perf_counter() - started < 30


def test_metadata_files_never_raise(tmp_path):
    from PIL import Image

    rng = random.Random(3)
    base = png_bytes(Image.new("RGB", (8, 8)), GenerationRequest(prompt="a cat"))
    path = tmp_path / "x.png"
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            data[position] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        metadata = read_metadata(path)  # documented: never raises
        _assert_in_qt_range(metadata.fields)


def test_what_metadata_lets_through_fits_the_panel(qtbot):
    """The UI path: metadata and history requests -> Settings -> GenerationPanel.load (its spin
    boxes raise OverflowError on a value over 2^31)."""
    from studio.ui.generation_panel import GenerationPanel

    panel = GenerationPanel()
    qtbot.addWidget(panel)
    rng = random.Random(4)
    for _ in range(300):
        metadata = parse_chunks({"studio_request": json.dumps(_request_dict(rng)), "parameters": _mutate(rng, A1111)})
        panel.load(apply_fields(Settings(), metadata.fields, "all"))
        if metadata.request is not None:
            panel.load(settings_from_request(Settings(), metadata.request))


# -- presets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_preset_dicts_raise_only_preset_error(seed):
    rng = random.Random(seed)
    for _ in range(3000):
        data = _json_value(rng) if rng.random() < 0.3 else {"format": 1, "name": _text(rng) or "n",
                                                             **{rng.choice(KEYS): _json_value(rng) for _ in range(4)}}
        try:
            preset, warnings = preset_from_dict(data)
        except PresetError as exc:
            assert len(str(exc)) < 1000
            continue
        assert all(len(w) < 1000 for w in warnings)
        for key in ("steps", "width", "height", "seed"):
            if key in preset.values:
                assert 0 <= preset.values[key] <= 2**32


def test_preset_files_load_and_import_without_raising(tmp_path):
    rng = random.Random(5)
    user = tmp_path / "user"
    user.mkdir()
    for index in range(300):
        roll = rng.random()
        if roll < 0.5:
            text = _mutate(rng, json.dumps({"format": 1, "name": f"P{index}", "steps": 20, "prompt": "{prompt}, x"}))
        elif roll < 0.75:
            text = json.dumps({"format": 1, "presets": [_json_value(rng) for _ in range(3)]})
        else:
            text = _chunk_text(rng)
        (user / f"p{index}.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    store = PresetStore(builtin_dir=tmp_path / "none", user_dir=user)
    warnings = store.load()  # documented: never raises; broken files are set aside
    assert all(isinstance(w, str) and len(w) < 2000 for w in warnings)
    for index in range(300):
        source = tmp_path / f"import{index}{rng.choice(['.json', '.csv'])}"
        if source.suffix == ".csv":
            source.write_text(_mutate(rng, "name,prompt,negative_prompt\nA,\"{prompt}, b\",c\nB,d,e\n"))
        else:
            source.write_text(_chunk_text(rng) if rng.random() < 0.5 else json.dumps([_json_value(rng) for _ in range(3)]))
        try:
            parse_preset_file(source)
            store.import_file(source)
        except PresetError as exc:
            assert len(str(exc)) < 1000


# -- state files -------------------------------------------------------------------------------
def test_state_files_load_without_raising(tmp_path, studio_home):
    rng = random.Random(6)
    studio_home.mkdir(parents=True, exist_ok=True)
    settings_path, session_path = studio_home / "settings.json", studio_home / "session.json"
    index_path = tmp_path / "history.jsonl"
    valid_settings = json.dumps({"prompt": "a cat", "steps": 20, "width": 512, "device": "cpu"})
    valid_session = json.dumps({"format": 1, "settings": json.loads(valid_settings), "canvas_image": None})
    for _ in range(700):
        settings_path.write_text(_mutate(rng, valid_settings) if rng.random() < 0.6 else json.dumps({
            rng.choice(KEYS): _json_value(rng) for _ in range(5)}))
        settings, _ = load_settings(settings_path)  # documented: never raises; a bad file is set aside
        _assert_in_qt_range({k: v for k, v in vars(settings).items() if k != "seed"})
        session_path.write_text(_mutate(rng, valid_session) if rng.random() < 0.6 else _chunk_text(rng))
        session, _ = load_session(session_path)
        if session is not None:
            _assert_in_qt_range({k: v for k, v in vars(session.settings).items() if k != "seed"})
    lines = [json.dumps({"path": f"/o/{i}.png", "time": i, "request": _request_dict(rng)}) for i in range(50)]
    for _ in range(300):
        index_path.write_text("\n".join(_mutate(rng, line) if rng.random() < 0.3 else line for line in lines))
        history = History(index_path)
        history.load()  # documented: never raises; damaged lines are skipped
        for entry in history.entries():
            request = entry.generation_request()
            if request is not None:
                _assert_in_qt_range(request.to_dict())


# -- requests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_requests_raise_only_invalid_request(seed):
    rng = random.Random(seed)
    for _ in range(3000):
        data = _request_dict(rng) if rng.random() < 0.8 else _json_value(rng)
        if not isinstance(data, dict):
            data = {"prompt": data}
        try:
            request = GenerationRequest.from_dict(data).validated()
        except InvalidRequest as exc:
            assert str(exc)
            continue
        _assert_in_qt_range(request.to_dict())
        GenerationRequest.from_dict(json.loads(json.dumps(request.to_dict()))).validated()  # round trip
