"""DESIGN.md: core and engine never import PySide6; core never imports torch; the layers
below the window never import it."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import studio

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
    timers) is theirs; widgets, pixmaps and the UI package are not."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        for name in ('studio.application', 'studio.backends'):
            pkg = importlib.import_module(name)
            for info in pkgutil.walk_packages(pkg.__path__, name + '.'):
                importlib.import_module(info.name)
        bad = sorted(m for m in sys.modules if m in ('PySide6.QtWidgets', 'PySide6.QtGui', 'torch')
                     or m.startswith('studio.ui'))
        print(bad)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Who may name the widget layer: the composition root, the command line and the dev tooling.
MAY_IMPORT_UI = ("studio/ui/", "studio/launch.py", "studio/cli.py", "studio/dev/")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_below_the_window_imports_the_widget_layer():
    """Read from the source (imports inside functions too), so a lazy import cannot hide."""
    root = Path(studio.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = "studio/" + path.relative_to(root).as_posix()
        if relative.startswith(MAY_IMPORT_UI):
            continue
        bad = sorted(m for m in _imported_modules(path) if m == "studio.ui" or m.startswith("studio.ui."))
        if bad:
            offenders.append(f"{relative}: {', '.join(bad)}")
    assert offenders == []
