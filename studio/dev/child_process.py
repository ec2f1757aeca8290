"""Commands that start a fresh Python for the studio's benchmarks, from any working folder.

`python -m studio` and `python -c CODE` put the working folder first on the import path, so a
folder named `studio` there (in an artist's home, say) is found before the studio itself:
"cannot import name '__version__' from 'studio' (unknown location)". A package folder shadows
any install; an empty one shadows an editable install, whose finder comes after the path's.
These commands take the working folder off the path before anything is imported (what
Python 3.11's `-P` does, kept as code because the studio still runs on 3.10).
"""

from __future__ import annotations

import sys

# `python -c` puts "" (the working folder) first; nothing else may be removed.
_WITHOUT_WORKING_FOLDER = "import sys\nif sys.path[:1] == ['']:\n    del sys.path[0]\n"
# `python -m MODULE ARGS`, as runpy runs it: sys.argv[0] becomes the module's file.
_RUN_MODULE = "import runpy\nmodule = sys.argv.pop(1)\nrunpy.run_module(module, run_name='__main__', alter_sys=True)\n"


def python_code(code: str, *args: str) -> list[str]:
    """`python -c code args` with this interpreter, the working folder off the import path."""
    return [sys.executable, "-c", _WITHOUT_WORKING_FOLDER + code, *args]


def python_module(module: str, *args: str) -> list[str]:
    """`python -m module args` with this interpreter, the working folder off the import path."""
    return python_code(_RUN_MODULE, module, *args)
