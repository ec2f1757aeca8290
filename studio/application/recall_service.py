"""Getting earlier work back into the generation state: a saved preset, the fields of a history
entry, or the recipe inside a dropped image. Each returns the sentence for the status line;
the state's `replaced` signal puts the fields into the panel. No widget here: what a dropped
image does to the canvas and the model choice stays with the window (studio.ui.recall)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from studio.application.generation_state import GenerationState, seed_note
from studio.core.formats.dropped_image import DroppedImage
from studio.core.formats.metadata import apply_fields
from studio.core.generation.request import Mode
from studio.core.generation.settings import Settings, settings_from_request
from studio.core.storage.presets import Preset, PresetStore


class RecallService:
    def __init__(self, state: GenerationState, presets: PresetStore | None = None):
        self.state = state
        self.presets = presets if presets is not None else PresetStore()

    def apply_preset(self, preset: Preset) -> str:
        settings = self.presets.apply(preset, self.state.current())
        return f"Applied preset “{preset.name}”.{self._replace(settings)}"

    def restore_fields(self, fields: dict, what: str, mode: str | None = None) -> str:
        """A history entry's fields: "all", or just its "seed" or "prompt"; `mode`: the entry's
        own (Image to image, Inpaint), whose input and mask the window restores beside it."""
        settings = apply_fields(self.state.current(), fields, what)
        if mode is not None:
            settings = dataclasses.replace(settings, mode=mode)
        seed = self._replace(settings)
        return f"Restored {'all settings' if what == 'all' else 'the ' + what} from history.{seed}"

    def restore_dropped(self, dropped: DroppedImage, as_input: bool = False) -> str:
        """A dropped image's settings: ours exactly (Generate makes it again, with its own input
        image in Image to image and Inpaint), or whatever an A1111, ComfyUI, InvokeAI or
        Fooocus image says. `as_input`: the image itself becomes the input, so an img2img or
        inpaint run is not made again."""
        metadata, name = dropped.metadata, Path(dropped.path).name
        if metadata.request is not None:
            seed = self._replace(settings_from_request(self.state.current(), metadata.request))
            needs_input = metadata.request.mode is not Mode.TXT2IMG
            if not needs_input:
                again = "; Generate makes it again"
            elif as_input:
                again = ""
            elif dropped.source is not None:
                again = " and its input image; Generate makes it again"
            else:
                again = "; without its input image Generate makes a different picture"
            return f"Restored the exact settings of {name}{again}.{seed}"
        seed = self._replace(apply_fields(self.state.current(), metadata.fields, "all"))
        extra = f" (not used: {', '.join(sorted(metadata.extras))})" if metadata.extras else ""
        return f"Read {metadata.source} settings from {name}{extra}.{seed}"

    def model_switch(self, dropped: DroppedImage) -> tuple[str | None, list[str]]:
        """(the installed model to switch to, or None; what to say): the image's own model when
        it is installed and not the current one."""
        current = self.state.model_path()
        if dropped.model_path:
            if Path(dropped.model_path).resolve() != Path(current).expanduser().resolve():
                return dropped.model_path, [f"Switched to its model, {Path(dropped.model_path).stem}."]
            return None, []
        if dropped.model_name:
            return None, [f"It was made with {dropped.model_name}, which is not in your model library; "
                          f"the current model ({Path(current).stem or 'none'}) stays."]
        return None, []

    def _replace(self, settings: Settings) -> str:
        return seed_note(settings, self.state.replace(settings))
