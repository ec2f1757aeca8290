"""Model files: detection per family from the safetensors header, hashes, the library of
models in the artist's folders."""
