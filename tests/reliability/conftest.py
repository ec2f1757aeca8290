"""The reliability layer (issue 9): fuzzers with fixed seeds, kill -9 during saves, a soak
through the real worker thread, and fault injection through the fake engine and the real window.
Everything here is sized to finish in about two minutes on two cores."""

from tests.ui.conftest import make_window, script  # noqa: F401 - fixtures shared with the UI tests
