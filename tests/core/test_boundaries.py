"""DESIGN.md: core and engine never import PySide6; core never imports torch."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def __init__(self, names): self.names = names
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in self.names:
                raise ImportError(name + ' is blocked in this layer')
    sys.meta_path.insert(0, Block({blocked!r}))
    import pkgutil, importlib, studio.{package} as pkg
    for info in pkgutil.walk_packages(pkg.__path__, 'studio.{package}.'):
        importlib.import_module(info.name)
    print('ok')
    """
)


def _imports_without(package: str, blocked: set[str]) -> subprocess.CompletedProcess:
    code = BLOCKER.format(package=package, blocked=blocked)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_imports_neither_qt_nor_torch():
    result = _imports_without("core", {"PySide6", "shiboken6", "torch", "diffusers", "transformers"})
    assert result.returncode == 0, result.stderr


def test_engine_imports_no_qt():
    result = _imports_without("engine", {"PySide6", "shiboken6"})
    assert result.returncode == 0, result.stderr


def test_the_application_layer_has_no_widgets_and_no_torch():
    """DESIGN.md: the controller and its services never touch the window. Qt's core (signals,
    timers) is theirs; widgets, pixmaps and the UI package are not (the local backend's engine
    thread, studio.backends.local.worker, is the one exception: it has no widget either)."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import studio.application as pkg
        for info in pkgutil.walk_packages(pkg.__path__, 'studio.application.'):
            importlib.import_module(info.name)
        bad = sorted(m for m in sys.modules if m in ('PySide6.QtWidgets', 'PySide6.QtGui', 'torch')
                     or (m.startswith('studio.ui.') and m != 'studio.backends.local.worker'))
        print(bad)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
