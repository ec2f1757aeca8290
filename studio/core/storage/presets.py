"""Presets: named subsets of generation settings, built-in (presets/*.json) or the user's own.

A preset file is versioned JSON: {"format": 1, "name": "...", "prompt": "{prompt}, 35mm", ...}.
Only the fields it names are applied; its prompt and negative prompt are a style that wraps
the user's own text at generation time, `{prompt}` standing for it (A1111 styles and
Krita/Fooocus do the same).

Reliability rules (research A6): a damaged file never stops the others from loading; a user
file that cannot be read is set aside as `<file>.invalid-<timestamp>` and reported once; its
`.bak` comes back when it is good. Saves are atomic and keep a `.bak` of the previous version.
A preset name never picks the path: names map to sanitised file names inside the folder.

Importing a style file (A1111 styles.csv, a Fooocus list) writes one file, a collection
{"format": 1, "presets": [...]}, whatever the number of styles: 16,000 files fsynced one by one
took a minute. Renaming or deleting one preset of a collection rewrites that file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import stat
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.generation.fields import FIELD, FIELDS
from studio.core.generation.samplers import canonical_sampler
from studio.core.generation.settings import Settings
from studio.core.storage.atomic import set_aside, write_text_atomic
from studio.core.storage.paths import data_home

PRESET_FORMAT = 1
PLACEHOLDER = "{prompt}"
MAX_NAME_LENGTH = 100
MAX_PRESET_FILE_BYTES = 1_000_000  # a preset is a few hundred bytes; refuse to parse huge files
MAX_IMPORT_BYTES = 32_000_000  # a style file to import, or a collection written by one (tens of thousands of styles)
MAX_MESSAGE_WARNINGS = 3  # warnings quoted in one message; the rest are counted
MAX_WARNING_CHARS = 200
Progress = Callable[[int, int], None]  # (done, total)
SEED_MODE = "seed_mode"  # a preset's name for random_seed: "random" or "fixed"
# Every field a preset may hold, in the order the save dialog lists them (fields.py says which).
PRESET_FIELDS: tuple[str, ...] = tuple(SEED_MODE if f.name == "random_seed" else f.name for f in FIELDS if f.stored_in_presets)
# What the save dialog calls each of them.
PRESET_FIELD_LABELS: dict[str, str] = {
    SEED_MODE if f.name == "random_seed" else f.name: f.preset_label or f.label for f in FIELDS if f.stored_in_presets
}
SEED_MODES = ("random", "fixed")
# Device names Windows reserves in any folder, with any extension: COM0-9 and LPT0-9 include the
# superscript digits ¹²³ (Microsoft's "Naming Files, Paths, and Namespaces").
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789¹²³")}
_UNSAFE_CHARS = re.compile(r"[^\w .\-()+,&']", re.UNICODE)


class PresetError(ValueError):
    """Something a person must fix (a bad name, a built-in that cannot be deleted, ...)."""


@dataclass(frozen=True, eq=True)
class Preset:
    name: str
    values: dict[str, Any] = field(default_factory=dict, hash=False)
    builtin: bool = False  # shipped in presets/; read-only

    def to_dict(self) -> dict[str, Any]:
        return {"format": PRESET_FORMAT, "name": self.name, **{k: self.values[k] for k in PRESET_FIELDS if k in self.values}}


# -- validation ------------------------------------------------------------------------------
def check_name(name: Any) -> str:
    """The name, trimmed; PresetError if it cannot be a preset name."""
    if not isinstance(name, str):
        raise PresetError("A preset name must be text.")
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise PresetError("A preset needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise PresetError(f"A preset name can have at most {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        raise PresetError("A preset name cannot contain control characters.")
    return name


def safe_file_stem(name: str) -> str:
    """A file name that is safe on every OS and can never leave the folder ('..', '/', NUL,
    'CON' and friends are neutralised, not passed through)."""
    stem = _UNSAFE_CHARS.sub("_", unicodedata.normalize("NFC", name))
    stem = re.sub(r"\.{2,}", "_", stem).strip(" .")
    if stem.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:  # Windows ignores the trailing spaces
        stem = "_" + stem
    return stem[:80] or "preset"


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    if not math.isfinite(value):
        raise ValueError("not finite")
    if kind is int:
        if value != int(value):
            raise ValueError("not a whole number")
        return int(value)
    return float(value)


def _check_field(key: str, value: Any) -> Any:
    """The field's value, normalised; ValueError with a reason if it is invalid. Types and
    ranges are the request's (fields.py): a preset never holds what Generate would refuse."""
    if key not in PRESET_FIELDS:
        raise ValueError("unknown field")
    if key == SEED_MODE:
        if value not in SEED_MODES:
            raise ValueError(f"must be one of {', '.join(SEED_MODES)}")
        return value
    f = FIELD[key]
    if f.type is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return canonical_sampler(value) if key == "sampler" else value
    value = _number(value, f.type)
    problem = f.problem(value)
    if problem:
        raise ValueError(problem)
    return value


def preset_from_dict(data: Any, builtin: bool = False) -> tuple[Preset, list[str]]:
    """(preset, warnings). Bad fields are dropped with a warning, as Krita does; a missing or
    bad name, a wrong format or a non-object raises PresetError."""
    if not isinstance(data, dict):
        raise PresetError("a preset must be a JSON object")
    version = data.get("format", PRESET_FORMAT)
    if isinstance(version, bool) or not isinstance(version, int) or version > PRESET_FORMAT:
        raise PresetError(f"unsupported preset format {_short(version)} (this version reads up to {PRESET_FORMAT})")
    name = check_name(data.get("name"))
    values: dict[str, Any] = {}
    warnings = []
    for key in PRESET_FIELDS:
        if key in data:
            try:
                values[key] = _check_field(key, data[key])
            except ValueError as exc:
                warnings.append(f"Preset {_short(name)}: ignored {key} {_short(data[key])} ({str(exc)[:MAX_WARNING_CHARS]}).")
    return Preset(name, values, builtin), warnings


def _short(value: Any, limit: int = 60) -> str:
    """repr() for a message, cut short: a hostile value must not make a megabyte message."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else text[:limit] + "…"


class ImportWarnings(list):
    """Warnings of one import: the first MAX_KEPT_WARNINGS are kept, the rest only counted (a
    7.6 MB list of bad items made millions of warnings, +319 MB); `skipped` counts the items
    that could not be imported."""

    MAX_KEPT_WARNINGS = 100

    def __init__(self):
        super().__init__()
        self.skipped = 0
        self.unlisted = 0

    def append(self, warning: str) -> None:
        if len(self) < self.MAX_KEPT_WARNINGS:
            super().append(warning if len(warning) <= MAX_WARNING_CHARS else warning[:MAX_WARNING_CHARS] + "…")
        else:
            self.unlisted += 1

    def __iadd__(self, warnings):
        for warning in warnings:
            self.append(warning)
        return self

    def skip(self, warning: str) -> None:
        self.skipped += 1
        self.append(warning)

    def finish(self) -> ImportWarnings:
        if self.unlisted:
            super().append(f"…and {self.unlisted:,} more problem(s) not listed.")
            self.unlisted = 0
        return self


def summarize_warnings(warnings: list[str], limit: int = MAX_MESSAGE_WARNINGS) -> str:
    """A few warnings, each cut to MAX_WARNING_CHARS, and a count of the rest: one bounded message."""
    quoted = [w if len(w) <= MAX_WARNING_CHARS else w[:MAX_WARNING_CHARS] + "…" for w in warnings[:limit]]
    more = len(warnings) - len(quoted)
    return " ".join(quoted) + (f" …and {more:,} more." if more > 0 else "")


# -- applying and capturing ------------------------------------------------------------------
# A preset's prompt and negative prompt are a *style* (A1111's styles.csv): they wrap the
# artist's own text when a request is built, and are never pasted into the prompt box, so
# applying "Cinematic" twice cannot give "cinematic still of cinematic still of …". The other
# fields (steps, sampler, size…) are plain settings, applied to the panel at once.
STYLE_FIELDS = ("prompt", "negative_prompt")


@dataclass(frozen=True)
class Style:
    """The prompt parts of a preset: templates with `{prompt}` standing for the artist's text.
    An empty template leaves that text as it is (a style without a negative adds none)."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""


def style_of(preset: Preset) -> Style | None:
    """The preset's style, or None for a preset that only sets numbers (Fast draft) or whose
    prompts are both empty: applying it leaves the active style on."""
    values = preset.values
    if not any(values.get(key) for key in STYLE_FIELDS):
        return None
    return Style(preset.name, values.get("prompt", ""), values.get("negative_prompt", ""))


def wrap_prompt(template: str, user_text: str) -> str:
    """A1111 style semantics: `{prompt}` is replaced by the artist's text; a template without
    it is appended. Text the template already wraps (restored from an image made with the
    style) is returned as it is, so wrapping twice equals wrapping once."""
    if not template:
        return user_text
    if _already_wrapped(template, user_text):
        return user_text
    if PLACEHOLDER in template:
        merged = template.replace(PLACEHOLDER, user_text)
        # "{prompt}, photo" with an empty prompt should give "photo", not ", photo".
        return merged if user_text else merged.strip(" ,")
    if not user_text:
        return template
    return f"{user_text}, {template}"


def _already_wrapped(template: str, text: str) -> bool:
    if not text:
        return False
    if text == template.replace(PLACEHOLDER, "").strip(" ,"):
        return True
    if PLACEHOLDER not in template:
        return text == template or text.endswith(f", {template}")
    pattern = "(.*)".join(re.escape(part) for part in template.split(PLACEHOLDER))
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def apply_style(style: Style | None, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """The final prompt and negative prompt a request carries (and its image's metadata)."""
    if style is None:
        return prompt, negative_prompt
    return wrap_prompt(style.prompt, prompt), wrap_prompt(style.negative_prompt, negative_prompt)


def apply_preset(preset: Preset, settings: Settings) -> Settings:
    """A new Settings with the preset's setting fields applied; the argument is not changed.
    Its prompt and negative prompt are not pasted in: they are the preset's style (style_of),
    applied when the request is built. Fields the Settings has no slot for are skipped."""
    values = preset.values
    names = {f.name for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {}
    for key in PRESET_FIELDS:
        if key not in STYLE_FIELDS and key != SEED_MODE and key in values and key in names:
            changes[key] = values[key]
    if values.get(SEED_MODE) in SEED_MODES:
        changes["random_seed"] = values[SEED_MODE] == "random"
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if k in names})


def capture_values(settings: Settings, chosen: Iterable[str]) -> dict[str, Any]:
    """The chosen fields' values from the current settings, as a preset stores them."""
    values: dict[str, Any] = {}
    for key in chosen:
        if key not in PRESET_FIELDS:
            raise PresetError(f"Unknown preset field {key!r}.")
        if key == SEED_MODE:
            values[key] = "random" if settings.random_seed else "fixed"
        elif hasattr(settings, key):
            values[key] = _check_field(key, getattr(settings, key))
    return values


# -- foreign style files ---------------------------------------------------------------------
def parse_a1111_styles(text: str, progress: Progress | None = None) -> tuple[list[Preset], ImportWarnings]:
    """A1111 styles.csv: columns name, prompt, negative_prompt (A1111 modules/styles.py)."""
    presets, warnings = [], ImportWarnings()
    csv.field_size_limit(MAX_IMPORT_BYTES)  # a long prompt is not an error; the file size is capped
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        warnings.append(f"The styles file is not valid CSV ({str(exc)[:MAX_WARNING_CHARS]}).")
        return [], warnings
    for number, row in enumerate(rows, start=2):
        if progress is not None and number % 500 == 0:
            progress(number - 2, len(rows))
        try:
            values = {}
            for key in ("prompt", "negative_prompt"):
                if isinstance(row.get(key), str) and row[key]:
                    values[key] = row[key]
            presets.append(Preset(check_name(row.get("name")), values))
        except PresetError as exc:
            warnings.skip(f"Row {number} skipped: {exc}")
    return presets, warnings.finish()


def parse_style_list(data: Any, progress: Progress | None = None) -> tuple[list[Preset], ImportWarnings]:
    """Fooocus sdxl_styles/*.json: a list of {name, prompt, negative_prompt}."""
    presets, warnings = [], ImportWarnings()
    for index, item in enumerate(data):
        if progress is not None and index % 500 == 0:
            progress(index, len(data))
        try:
            if not isinstance(item, dict):
                raise PresetError("not an object")
            values = {k: item[k] for k in ("prompt", "negative_prompt") if isinstance(item.get(k), str) and item[k]}
            presets.append(Preset(check_name(item.get("name")), values))
        except PresetError as exc:
            warnings.skip(f"Style #{index + 1} skipped: {exc}")
    return presets, warnings.finish()


def _read_import_bytes(path: Path, limit: int) -> bytes:
    """The whole file, or PresetError: not a regular file (a FIFO would block), or larger than
    `limit` (said plainly, never cut silently)."""
    name = path.name[:100]
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PresetError(f"{name} is not a regular file.")
            raw = handle.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise PresetError(f"{name} cannot be read ({str(exc)[:MAX_WARNING_CHARS]}).") from exc
    if len(raw) > limit:
        raise PresetError(f"{name} is too large to import (over {limit // 1_000_000} MB).")
    return raw


def parse_preset_file(path: Path, progress: Progress | None = None) -> tuple[list[Preset], list[str]]:
    """Presets in a file to import: our JSON (one preset or a collection), a Fooocus style list,
    or an A1111 styles.csv. Raises PresetError with a readable, bounded message when nothing in
    it can be used. `progress(done, total)` is called now and then from this thread."""
    path = Path(path)
    name = path.name[:100]
    try:
        text = _read_import_bytes(path, MAX_IMPORT_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{name} cannot be read ({exc.reason} at byte {exc.start}).") from exc
    if path.suffix.lower() == ".csv":
        presets, warnings = parse_a1111_styles(text, progress)
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PresetError(f"{name} is not valid JSON ({str(exc)[:MAX_WARNING_CHARS]}).") from exc
        if isinstance(data, dict) and isinstance(data.get("presets"), list):
            data = data["presets"]
        if isinstance(data, list):
            presets, warnings = parse_style_list_or_presets(data, progress)
        else:
            preset, problems = preset_from_dict(data)
            presets, warnings = [preset], ImportWarnings()
            warnings += problems
    if not presets:
        raise PresetError(f"{name} holds no presets. " + summarize_warnings(warnings))
    return presets, warnings


def parse_style_list_or_presets(data: list, progress: Progress | None = None) -> tuple[list[Preset], list[str]]:
    """A list of our presets (any field) or of Fooocus styles (name, prompt, negative_prompt)."""
    if any(isinstance(item, dict) and "format" in item for item in data[:1]):
        presets, warnings = [], ImportWarnings()
        for index, item in enumerate(data):
            if progress is not None and index % 500 == 0:
                progress(index, len(data))
            try:
                preset, problems = preset_from_dict(item)
                presets.append(preset)
                warnings += problems
            except PresetError as exc:
                warnings.skip(f"Preset #{index + 1} skipped: {exc}")
        return presets, warnings.finish()
    return parse_style_list(data, progress)


def _numbered_duplicates(presets: list[Preset], warnings: list[str]) -> list[Preset]:
    """The same name twice in one file (A1111 keeps both rows): the later ones are kept as
    "Name (2)", "Name (3)"…, each said, so no row's prompts are lost."""
    used = {preset.name.casefold() for preset in presets}
    seen: set[str] = set()
    kept = []
    for preset in presets:
        key = preset.name.casefold()
        if key in seen:
            number = 2
            while _numbered(preset.name, number).casefold() in used:
                number += 1
            renamed = _numbered(preset.name, number)
            used.add(renamed.casefold())
            warnings.append(f"A second style named {_short(preset.name)} was kept as {_short(renamed)}.")
            preset = dataclasses.replace(preset, name=renamed)
            key = renamed.casefold()
        seen.add(key)
        kept.append(preset)
    return kept


def _numbered(name: str, number: int) -> str:
    suffix = f" ({number})"
    return name[:MAX_NAME_LENGTH - len(suffix)] + suffix


def builtin_presets_dir() -> Path:
    """presets/ at the repository root, or shipped inside the installed package (paths.py)."""
    from studio.core.storage.paths import builtin_presets_dir as shipped

    return shipped()


def user_presets_dir() -> Path:
    return data_home() / "presets"


# -- the store -------------------------------------------------------------------------------
@dataclass
class PreparedImport:
    """An import whose reading, checking and writing are done (PresetStore.prepare_import, any
    thread); PresetStore.finish_import adopts it in the thread that owns the store."""

    source: Path
    presets: list[Preset]
    warnings: list[str]
    skipped: int
    path: Path | None = None  # the collection file written; None when one preset is saved on finish


def _collection_text(presets: list[Preset]) -> str:
    return json.dumps({"format": PRESET_FORMAT, "presets": [p.to_dict() for p in presets]}, indent=1,
                      ensure_ascii=False) + "\n"


class PresetStore:
    """Built-in presets plus the user's; a user preset overrides a built-in of the same name
    (names compare case-insensitively). Call load() once; it returns the warnings to show."""

    def __init__(self, builtin_dir: Path | None = None, user_dir: Path | None = None):
        self.builtin_dir = Path(builtin_dir) if builtin_dir is not None else builtin_presets_dir()
        self.user_dir = Path(user_dir) if user_dir is not None else user_presets_dir()
        self._builtin: dict[str, Preset] = {}
        self._user: dict[str, tuple[Preset, Path]] = {}
        self._collections: set[Path] = set()  # user files holding several presets (imports)

    # reading
    def load(self) -> list[str]:
        warnings: list[str] = []
        self._builtin = {}
        for path in self._json_files(self.builtin_dir):
            try:
                preset, problems = preset_from_dict(self._read_json(path), builtin=True)
            except PresetError as exc:
                # Never rename files of the installation; just skip and say so.
                warnings.append(f"Built-in preset {path.name} skipped: {exc}")
                continue
            warnings += problems
            self._builtin[preset.name.casefold()] = preset
        self._user = {}
        self._collections = set()
        for path in self._json_files(self.user_dir):
            for loaded in self._load_user_file(path, warnings):
                self._user[loaded.name.casefold()] = (loaded, path)
        return warnings

    def _presets_in(self, path: Path, warnings: list[str]) -> list[Preset]:
        """The presets of a user file: one preset, or a collection an import wrote."""
        data = self._read_json(path, MAX_IMPORT_BYTES)
        if isinstance(data, dict) and isinstance(data.get("presets"), list) and "name" not in data:
            presets, problems = parse_style_list_or_presets(data["presets"])
            if not presets and data["presets"]:
                raise PresetError("none of its presets can be read")
            if problems:
                warnings.append(f"Preset file {path.name}: {summarize_warnings(problems)}")
            self._collections.add(path)
            return presets
        if path.stat().st_size > MAX_PRESET_FILE_BYTES:
            raise PresetError("the file is too large to be a preset")
        preset, problems = preset_from_dict(data)
        warnings += problems
        return [preset]

    def _load_user_file(self, path: Path, warnings: list[str]) -> list[Preset]:
        try:
            return self._presets_in(path, warnings)
        except (PresetError, OSError) as exc:
            aside = self._set_aside(path)
            message = f"Preset file {path.name} could not be read ({str(exc)[:MAX_WARNING_CHARS]}); it was moved to {aside.name}."
        backup = path.with_name(path.name + ".bak")
        try:
            presets = self._presets_in(backup, [])
            collection = backup in self._collections
            self._collections.discard(backup)
            write_text_atomic(path, backup.read_text(encoding="utf-8"))
            if collection:
                self._collections.add(path)
            warnings.append(message + " The previous version was restored from its backup.")
            return presets
        except (PresetError, OSError, UnicodeDecodeError):
            warnings.append(message)
            return []

    @staticmethod
    def _json_files(folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))
        except OSError:
            return []

    @staticmethod
    def _read_json(path: Path, limit: int = MAX_PRESET_FILE_BYTES) -> Any:
        try:
            if path.stat().st_size > limit:
                raise PresetError("the file is too large to be a preset")
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise PresetError(str(exc) or type(exc).__name__) from exc

    @staticmethod
    def _set_aside(path: Path) -> Path:
        try:
            return set_aside(path, f"{path.name}.invalid-{time.strftime('%Y%m%d-%H%M%S')}")
        except OSError:
            return path

    def list(self) -> list[Preset]:
        merged = dict(self._builtin)
        merged.update({key: preset for key, (preset, _) in self._user.items()})
        return sorted(merged.values(), key=lambda p: p.name.casefold())

    def names(self) -> list[str]:
        return [p.name for p in self.list()]

    def get(self, name: str) -> Preset | None:
        key = name.strip().casefold() if isinstance(name, str) else ""
        if key in self._user:
            return self._user[key][0]
        return self._builtin.get(key)

    def is_builtin(self, name: str) -> bool:
        preset = self.get(name)
        return preset is not None and preset.builtin

    # writing
    def save(self, name: str, settings: Settings, chosen: Iterable[str]) -> Preset:
        """Save the chosen fields of the current settings under `name` (replacing a user preset
        of that name, shadowing a built-in)."""
        return self.save_preset(Preset(check_name(name), capture_values(settings, chosen)))

    def save_preset(self, preset: Preset) -> Preset:
        name = check_name(preset.name)
        preset, _ = preset_from_dict({**preset.to_dict(), "name": name})  # re-validate every field
        self._leave_collection(name.casefold())  # a preset saved on its own gets its own file
        path = self._path_for(name)
        self._write(path, preset)
        self._user[name.casefold()] = (preset, path)
        return preset

    def _leave_collection(self, *keys: str) -> None:
        """Take these presets out of the collection files holding them: one rewrite per file."""
        touched = {self._user[k][1] for k in keys if k in self._user and self._user[k][1] in self._collections}
        for key in keys:
            if key in self._user and self._user[key][1] in touched:
                del self._user[key]
        for path in touched:
            rest = [p for p, where in self._user.values() if where == path]
            if rest:
                write_text_atomic(path.with_name(path.name + ".bak"), path.read_text(encoding="utf-8"))
                write_text_atomic(path, _collection_text(rest))
            else:
                self._collections.discard(path)
                self._remove(path)

    def rename(self, old: str, new: str) -> Preset:
        key = old.strip().casefold()
        if key not in self._user:
            if key in self._builtin:
                raise PresetError(f"{old!r} is built in and cannot be renamed; save a copy under a new name.")
            raise PresetError(f"There is no preset named {old!r}.")
        new = check_name(new)
        if new.casefold() != key and new.casefold() in self._user:
            raise PresetError(f"A preset named {new!r} already exists.")
        preset, old_path = self._user[key]
        renamed = Preset(new, dict(preset.values))
        if old_path in self._collections:
            self._leave_collection(key)
            return self.save_preset(renamed)
        del self._user[key]
        path = old_path if new.casefold() == key else self._path_for(new)
        self._write(path, renamed)
        self._user[new.casefold()] = (renamed, path)
        if path != old_path:
            self._remove(old_path)
        return renamed

    def delete(self, name: str) -> None:
        """Delete a user preset (a built-in of the same name shows again); built-ins stay."""
        key = name.strip().casefold()
        if key not in self._user:
            if key in self._builtin:
                raise PresetError(f"{name!r} is built in and cannot be deleted.")
            raise PresetError(f"There is no preset named {name!r}.")
        if self._user[key][1] in self._collections:
            self._leave_collection(key)
            return
        _, path = self._user.pop(key)
        self._remove(path)

    def import_file(self, path: Path, progress: Progress | None = None) -> tuple[list[Preset], list[str]]:
        """Import every preset in the file (our JSON, Fooocus style list, A1111 styles.csv).
        Same-named user presets are replaced. Returns (imported, warnings)."""
        prepared = self.prepare_import(path, progress)
        return self.finish_import(prepared), prepared.warnings

    def prepare_import(self, path: Path, progress: Progress | None = None) -> PreparedImport:
        """Read, check and write an import without changing the store, so it can run off the
        GUI thread: several presets become one new collection file, written once. Raises
        PresetError (a bounded message) or OSError."""
        presets, warnings = parse_preset_file(Path(path), progress)
        skipped = getattr(warnings, "skipped", 0)
        presets = _numbered_duplicates(presets, warnings)
        warnings = list(warnings)
        if len(presets) == 1:
            return PreparedImport(Path(path), presets, list(warnings), skipped)
        target = self._new_file(safe_file_stem(Path(path).stem))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, _collection_text(presets))
        if progress is not None:
            progress(len(presets), len(presets))
        return PreparedImport(Path(path), presets, list(warnings), skipped, target)

    def finish_import(self, prepared: PreparedImport) -> list[Preset]:
        """Adopt a prepared import (in the store's thread); same-named user presets elsewhere
        are replaced (their files moved to .bak, collections rewritten once each)."""
        if prepared.path is None:
            return [self.save_preset(p) for p in prepared.presets]
        keys = [p.name.casefold() for p in prepared.presets]
        self._leave_collection(*keys)
        for key in keys:
            if key in self._user:
                _, old = self._user.pop(key)
                self._remove(old)
        self._collections.add(prepared.path)
        for preset in prepared.presets:
            self._user[preset.name.casefold()] = (preset, prepared.path)
        return list(prepared.presets)

    def export_file(self, name: str, dest: Path) -> Path:
        preset = self.get(name)
        if preset is None:
            raise PresetError(f"There is no preset named {name!r}.")
        dest = Path(dest)
        write_text_atomic(dest, json.dumps(preset.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return dest

    def apply(self, name_or_preset: str | Preset, settings: Settings) -> Settings:
        preset = name_or_preset if isinstance(name_or_preset, Preset) else self.get(name_or_preset)
        if preset is None:
            raise PresetError(f"There is no preset named {name_or_preset!r}.")
        return apply_preset(preset, settings)

    # files
    def _new_file(self, stem: str) -> Path:
        """A file name in the user folder that no preset and no file uses yet."""
        used = {path.name.casefold() for _, path in self._user.values()}
        candidate, number = f"{stem}.json", 1
        while candidate.casefold() in used or (self.user_dir / candidate).exists():
            number += 1
            candidate = f"{stem}-{number}.json"
        return self.user_dir / candidate

    def _path_for(self, name: str) -> Path:
        """The existing file of this preset, or a new safe one that no other preset uses."""
        key = name.casefold()
        if key in self._user:
            return self._user[key][1]
        used = {path.name.casefold() for _, path in self._user.values()}
        stem = safe_file_stem(name)
        candidate, number = f"{stem}.json", 1
        while candidate.casefold() in used or (self.user_dir / candidate).exists():
            number += 1
            candidate = f"{stem}-{number}.json"
        path = self.user_dir / candidate
        # Belt and braces: the sanitiser already guarantees this.
        if path.resolve().parent != self.user_dir.resolve():
            raise PresetError(f"{name!r} cannot be used as a preset name.")
        return path

    @staticmethod
    def _write(path: Path, preset: Preset) -> None:
        """Atomic write; the previous version is kept as <file>.bak (written atomically too)."""
        text = json.dumps(preset.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path.exists():
            try:
                write_text_atomic(path.with_name(path.name + ".bak"), path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                pass  # a damaged previous version is not worth keeping
        write_text_atomic(path, text)

    @staticmethod
    def _remove(path: Path) -> None:
        """Deleting keeps the last version as .bak, so a slip can be undone by hand."""
        try:
            path.replace(path.with_name(path.name + ".bak"))
        except FileNotFoundError:
            pass
