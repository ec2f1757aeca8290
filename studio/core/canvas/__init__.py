"""The canvas's data without Qt: mask operations (outpainting) and the undo stack."""
