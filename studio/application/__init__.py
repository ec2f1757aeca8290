"""The application layer: between the window and the engine thread (DESIGN.md, "Where the
structure goes next"). A controller without widgets owns the job queue, output writing and
history, and talks to a Backend (studio.core.backend); the window only lays out and connects."""
