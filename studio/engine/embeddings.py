"""Textual-inversion embeddings, used A1111's way: write the file's name in the prompt.

Files are `.safetensors` in the embedding folders (studio.core.models.model_library.embedding_folders):
A1111's SD 1.x/2.x format holds `emb_params` [n_vectors, width]; SDXL ones hold `clip_l` and
`clip_g`, one set of vectors per text encoder; a diffusers `learned_embeds` file holds one
tensor under any key. Pickled `.pt`/`.bin` files are not read (they can run code).

The folders' listings are kept while the folders are unchanged (names and paths only); a file
is opened only when its name appears in the prompt, so a file added, changed or removed
between jobs is seen at once and nothing outlives the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from studio.core.generation.prompt_syntax import CHUNK_LENGTH
from studio.core.models.folder_index import indexed_safetensors_files
from studio.core.models.model_library import embedding_folders, folders_beside_model

SD_KEY = "emb_params"
SDXL_KEYS = ("clip_l", "clip_g")
_WIDTH_FAMILY = {768: "SD 1.x", 1024: "SD 2.x"}  # CLIP-L, OpenCLIP-H token widths


@dataclass(frozen=True)
class Embedding:
    name: str
    path: Path
    vectors: dict[str, torch.Tensor]  # text-encoder key ("emb_params", "clip_l", "clip_g") -> [n, width]

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]


def embedding_files(model_path: str, extra_folders: list[str] | tuple[str, ...] = ()) -> dict[str, Path]:
    """name (file stem) -> file, for every `.safetensors` in the embedding folders. The first
    folder wins a name clash (the studio's own folder comes first). Cheap: a directory listing."""
    folders = folders_beside_model(model_path) + [Path(p).expanduser() for p in extra_folders if p]
    found: dict[str, Path] = {}
    for folder in embedding_folders(folders):
        for path in indexed_safetensors_files(folder):  # listed again only when the folder changed
            found.setdefault(path.stem, path)
    return found


def read_embedding(name: str, path: Path) -> Embedding:
    """The vectors in an embedding file, by text-encoder key. Raises ValueError for a file that
    is not an embedding (OSError/safetensors errors for an unreadable one)."""
    from safetensors.torch import load_file

    data = load_file(str(path))
    if all(key in data for key in SDXL_KEYS):
        vectors = {key: data[key] for key in SDXL_KEYS}
    elif SD_KEY in data:
        vectors = {SD_KEY: data[SD_KEY]}
    elif len(data) == 1:  # diffusers' learned_embeds: {"<token>": vectors}
        vectors = {SD_KEY: next(iter(data.values()))}
    else:
        raise ValueError(f"no embedding vectors in it (keys: {', '.join(sorted(data)[:5])})")
    vectors = {key: (v.unsqueeze(0) if v.ndim == 1 else v) for key, v in vectors.items()}
    if any(v.ndim != 2 or v.shape[0] == 0 for v in vectors.values()):
        raise ValueError("its vectors are not a [count, width] table")
    if len({v.shape[0] for v in vectors.values()}) != 1:
        raise ValueError("its two text encoders' vectors differ in count")
    return Embedding(name, path, vectors)


def made_for(embedding: Embedding) -> str:
    """The family an embedding's vectors fit, for notes: by its keys, then its width."""
    if set(SDXL_KEYS) <= set(embedding.vectors):
        return "SDXL"
    return _WIDTH_FAMILY.get(embedding.vectors[SD_KEY].shape[1], "SD 1.x/2.x")


def fit_note(embedding: Embedding, family_label: str, widths: dict[str, int], chunk_length: int = CHUNK_LENGTH) -> str:
    """Why the embedding cannot be used with this model ("" if it can). `widths` maps the
    keys this model's encoders read (the family's: "emb_params", or "clip_l" and "clip_g")
    to their widths."""
    name, keys = embedding.name, set(embedding.vectors)
    if not set(widths) <= keys:
        return f"Embedding {name} is for {made_for(embedding)}, not {family_label}; it was left out."
    for key, width in widths.items():
        got = embedding.vectors[key].shape[1]
        if got != width:
            made_for_width = _WIDTH_FAMILY.get(got, "another model")
            return f"Embedding {name} is for {made_for_width} ({got}-wide vectors; this model takes {width}); it was left out."
    if embedding.count > chunk_length:
        return (f"Embedding {name} has {embedding.count} vectors, more than the {chunk_length} a prompt chunk holds; "
                "it was left out.")
    return ""


@dataclass
class EmbeddingLookup:
    """Finds embedding names in a prompt's tokens, A1111's way (EmbeddingDatabase
    .find_embedding_at_position): a name matches where its own tokens appear, longest first.
    Files are read on first match; one lookup serves one job."""

    files: dict[str, Path]
    tokenizer: object
    family_label: str  # "SDXL", for notes
    widths: dict[str, int]
    chunk_length: int = CHUNK_LENGTH  # fewer for a text encoder with under 77 positions (the demo model)
    notes: list[str] = field(default_factory=list)
    used: dict[str, Embedding] = field(default_factory=dict)
    _by_first: dict[int, list[tuple[list[int], str]]] | None = None
    _loaded: dict[str, Embedding | None] = field(default_factory=dict)

    def _index(self) -> dict[int, list[tuple[list[int], str]]]:
        if self._by_first is None:
            self._by_first = {}
            names = list(self.files)
            ids = self.tokenizer(names, add_special_tokens=False, truncation=False, verbose=False)["input_ids"] if names else []
            for name, name_ids in zip(names, ids, strict=False):
                if name_ids:
                    self._by_first.setdefault(name_ids[0], []).append((name_ids, name))
            for entries in self._by_first.values():
                entries.sort(key=lambda entry: -len(entry[0]))
        return self._by_first

    def _load(self, name: str) -> Embedding | None:
        if name not in self._loaded:
            embedding = None
            try:
                embedding = read_embedding(name, self.files[name])
            except Exception as exc:  # noqa: BLE001 - a broken file is skipped with a note, never fatal
                self.notes.append(f"Embedding {name} could not be read ({exc}); it was left out.")
            else:
                note = fit_note(embedding, self.family_label, self.widths, self.chunk_length)
                if note:
                    self.notes.append(note)
                    embedding = None
            self._loaded[name] = embedding
        return self._loaded[name]

    def __call__(self, tokens: list[int], position: int) -> tuple[Embedding, int, int] | None:
        """make_chunks' EmbeddingFinder: (embedding, prompt tokens its name took, vectors) or None."""
        if not self.files:
            return None
        for name_ids, name in self._index().get(tokens[position], ()):
            if tokens[position : position + len(name_ids)] == name_ids:
                embedding = self._load(name)
                if embedding is None:
                    continue  # skipped: a shorter name may still match, else the words stay words
                self.used[name] = embedding
                return embedding, len(name_ids), embedding.count
        return None
