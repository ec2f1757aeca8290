"""The local engine: its QThread (worker, closer) and the LocalBackend over it."""
