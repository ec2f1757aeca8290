"""Importing the engine's libraries without freezing the window.

torch, diffusers and transformers take seconds to import and hold the GIL for long stretches
while they do; the engine thread calls `warm_engine_imports` first, so the GUI thread keeps
painting meanwhile. Nothing here imports Qt.
"""

from __future__ import annotations

import gc
import os
import sys

# torch's native libraries, dependencies first. Loading them runs their static initialisers
# (operator registration: 150-450 ms on a 2-core machine).
_TORCH_LIBRARIES = ("libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so",
                    "libtorch_python.so")


# While the imports run, the GUI thread (and the token counter, importing transformers too)
# compete for the GIL with the engine thread: a shorter slice hands it over sooner.
SWITCH_INTERVAL_WARMING = 0.001


def _preload_torch_libraries() -> None:
    """Load torch's shared libraries with the GIL released. `import torch` dlopens them inside
    `from torch._C import *`, one C call that holds the GIL throughout: the GUI thread froze for
    up to 450 ms (studio.dev.bench_stall). A ctypes call into libc's dlopen releases the GIL, so the
    same work runs beside the GUI, and the import later finds the libraries already loaded.
    Best effort: a library that does not load here (another platform, a CUDA library whose
    dependencies torch locates itself) is simply loaded by the import, as before."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import importlib.util

        spec = importlib.util.find_spec("torch")  # finds the folder without importing torch
        if spec is None or spec.origin is None:
            return
        lib = os.path.join(os.path.dirname(spec.origin), "lib")
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        for name in _TORCH_LIBRARIES:
            path = os.path.join(lib, name)
            if os.path.exists(path):
                dlopen(path.encode(), os.RTLD_NOW | os.RTLD_GLOBAL)  # NULL on failure: the import loads it
    except Exception:  # noqa: BLE001 - only a warm-up
        pass


def warm_engine_imports() -> None:
    """Import the engine's libraries in the engine thread without freezing the GUI thread.

    Two things held the GIL for long stretches while torch, diffusers and transformers were
    imported (py-spy --gil, gc.callbacks): torch's native libraries (see above), and full
    garbage collections. Imports create hundreds of thousands of long-lived objects, so each
    generation-2 collection walks a larger heap: 47, 71, 96, 120, 154, 197 ms, one C call each.
    The collector is paused during the imports and what they created is then frozen (moved to
    the permanent generation, which collections skip): module-level objects live as long as the
    process anyway. The model's own objects are created later, with the collector running, so
    a model that is replaced is still collected."""
    _preload_torch_libraries()
    was_enabled = gc.isenabled()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_WARMING))
    gc.disable()
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401

        # The lazy modules a model load resolves; warm-up only, so a missing one is no error here.
        from diffusers import AutoencoderKL, StableDiffusionPipeline  # noqa: F401
        from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401
    except Exception:  # noqa: BLE001 - the engine's own imports report a broken install
        pass
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
        sys.setswitchinterval(interval)
