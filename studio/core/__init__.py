"""Pure-Python core: no Qt, no torch. Requests, settings, paths, metadata, outputs."""
