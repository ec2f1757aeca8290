"""Other tools' formats: A1111 infotext, PNG metadata (A1111, ComfyUI, InvokeAI), dropped images."""
