"""The model: choosing it (the toolbar's lists, a dropped image's own model), its device and
memory options, and what its loading says on the canvas and the status line.

Startup messages (a restored session, settings set aside) are kept in front of the "Loading…"
and "Ready" lines that follow them at once (notify), so they are not wiped out unread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from studio.application.model_facts import ModelFactsReader
from studio.core.events import Event, ModelFailed, ModelLoaded, ModelLoading
from studio.core.generation.settings import apply_model_defaults
from studio.ui.job_view import with_note

NO_MODEL_TEXT = (
    "No model chosen yet.\n\nOpen the Model list above: “Choose file or folder…” opens a Stable Diffusion "
    "1.x, 2.x or SDXL checkpoint (.safetensors) or a diffusers folder; “Add model folder…” lists every "
    "model in a folder you keep them in, such as A1111's models/Stable-diffusion or ComfyUI's "
    "models/checkpoints."
)
# What the empty canvas says once a model is ready: in the modes that need an input image,
# typing a prompt is not the next step.
READY_TEXT = {
    "txt2img": "Type a prompt and press Generate (Ctrl+Enter).",
    "img2img": "Image to image needs an input image: open one (Ctrl+O), paste it (Ctrl+V) or drop it here.",
    "inpaint": "Inpainting needs an input image: open one (Ctrl+O), paste it (Ctrl+V) or drop it here, "
               "then paint over the part to change.",
}


class ModelStatus(QObject):
    def __init__(self, window):
        """`window`: the MainWindow, for its picker, memory button, canvas, banner and status line."""
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.state = window.controller.state
        self.ready = False
        self._load_note = ""  # what ModelLoading said about memory; kept if the load fails
        self._notice = ""  # a startup message kept in front of the loading status until the model is ready
        # The model choice (settings.model) that loaded last: a choice that fails to load goes
        # back to it, so the list never shows a model that is not there.
        self._loaded_choice: str | None = None
        self._load_error_text = ""  # the banner's text while it shows a load failure
        self.controller.backendEvent.connect(self._on_event)
        self.facts = ModelFactsReader(self.state, self)  # which fields the chosen model reads

    def notify(self, text: str) -> None:
        self._notice = " ".join(t for t in (self._notice, text) if t)
        self.window.say(self._notice)

    def clear_notice(self) -> None:
        self._notice = ""

    # -- the artist's choices ------------------------------------------------------------------
    def set_model(self, path: str) -> None:
        state = self.state
        settings = state.current()
        settings.model = path
        if apply_model_defaults(settings, path):
            state.reload()  # the model's own size, steps and guidance into the panel
        state.save()
        self.facts.read(state.model_path())  # the panel follows the choice, not the (slow) load
        self.ready = False
        self.show_state()
        self.window.banner.hide()
        self.controller.load_model(path, settings.device, settings.vae)

    def load_current(self) -> None:
        """Load the chosen model (at start, and after a change of device)."""
        settings, model = self.state.settings, self.state.model_path()
        if model and model != self.state.facts_model:
            self.facts.read(model)
        if model:
            # Said at once: the engine thread's first words come only after torch is imported.
            self.window.say(f"{self._notice} Loading {Path(model).name}…".strip())
            self.controller.load_model(model, settings.device, settings.vae)

    def device_changed(self, device: str) -> None:
        self.state.settings.device = device
        self.state.save()
        self.load_current()

    def memory_changed(self) -> None:
        settings = self.state.settings
        self.controller.set_memory(self.window.memory_button.options())
        offload = "on: the model reloads at the next generation" if settings.cpu_offload else "off"
        self.window.say(f"Memory options: attention slicing {'on' if settings.attention_slicing else 'off'}, "
                        f"VAE tiling {settings.vae_tiling}, model CPU offload {offload}.")

    # -- what the canvas and status line say ---------------------------------------------------
    def show_state(self) -> None:
        model = self.state.model_path()
        self.window.picker.show_current(model)
        if not model:
            self.window.canvas.show_message(NO_MODEL_TEXT)
            self.window.say("Choose a model to start.")

    def show_ready_text(self) -> None:
        """The empty canvas says what the chosen mode needs next."""
        canvas = self.window.canvas
        if self.ready and canvas.image_size is None and canvas.document is None:
            canvas.show_message(READY_TEXT.get(self.window.panel.current_mode(), READY_TEXT["txt2img"]))

    def _on_event(self, event: Event) -> None:
        match event:
            case ModelLoading():
                self._loading(event)
            case ModelLoaded():
                self._loaded(event)
            case ModelFailed():
                self._failed(event)

    def _loading(self, event: ModelLoading) -> None:
        self._load_note = event.note
        self.window.say(with_note(f"{self._notice} Loading {Path(event.model).name} on {event.device}…".strip(),
                                  event.note))

    def _loaded(self, event: ModelLoaded) -> None:
        self.ready = True
        self._load_note = ""
        self.state.model_loaded(event.model)
        self._loaded_choice = self.state.settings.model
        ready = f"Ready: {Path(event.model).name} on {event.device} ({event.dtype}), loaded in {event.seconds:.1f} s."
        banner = self.window.banner
        if self._load_error_text and banner.isVisible() and banner.label.text() == self._load_error_text:
            banner.hide()  # an earlier model's failure is history now
        self._load_error_text = ""
        self.window.say(f"{self._notice} {ready}".strip())
        self._notice = ""
        self.show_ready_text()

    def _failed(self, event: ModelFailed) -> None:
        self.ready = False
        banner = self.window.banner
        banner.show_error(event.error)
        self._load_error_text = banner.label.text()
        self.window.say(with_note(f"{self._notice} The model could not be loaded.".strip(), self._load_note))
        self._load_note = ""
        self._notice = ""
        self._back_to_last_loaded(event)

    def _back_to_last_loaded(self, event: ModelFailed) -> None:
        """A model that failed to load is not left selected: the list goes back to the last
        model that loaded (the next Generate loads it again if the failed attempt let it go)."""
        settings, previous = self.state.settings, self._loaded_choice
        if previous is None or previous == settings.model:
            return  # nothing loaded yet (Generate then says why it failed), or it is the one that failed
        failed = Path(event.model or self.state.model_path()).name
        settings.model = previous
        self.state.save()
        self.window.picker.show_current(self.state.model_path())
        self.facts.read(self.state.model_path())
        self.window.say(f"{failed} could not be loaded; the model list is back on {Path(self.state.model_path()).name}.")
