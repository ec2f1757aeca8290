"""Backends: what runs jobs. Each speaks the Backend protocol (studio.core.backend) and
reports the engine's typed events unchanged."""
