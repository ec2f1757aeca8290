"""torch + diffusers, no Qt. Model loading, pipelines, schedulers, previews, errors.

The studio never reaches the network: we set the Hugging Face offline switches before
diffusers or transformers is imported (they read them once, at import).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# transformers warns about optional image backends we never use; keep the terminal calm.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
