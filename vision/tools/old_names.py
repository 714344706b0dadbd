"""Vision-tool plugins written before 0.2 import `vision.tools.base` and friends; for one release those names
still resolve, to the very same modules under `vesalius.vision`, with a DeprecationWarning naming the new path.

The alias is installed only when plugins load, so a process that loads none has no top-level `vision` at all.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import warnings
from types import ModuleType

OLD = "vision"
REMOVED_IN = "0.3"


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self.used: list[str] = []  # old names imported so far, in order, for the registry to report
        self._lock = threading.Lock()

    def find_spec(self, fullname: str, path, target=None):
        if fullname != OLD and not fullname.startswith(OLD + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"vesalius.{spec.name}"
        warnings.warn(
            f"'{spec.name}' is now '{new}'; the old name stops working in Vesalius {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        with self._lock:
            self.used.append(spec.name)
        return importlib.import_module(new)  # the same module object: one class, whichever name a plugin uses

    def exec_module(self, module: ModuleType) -> None:
        """Already executed under its new name."""


def install() -> OldNames:
    """The process's alias finder, installed once, ahead of the path finder (which could find a source tree's
    `vision/` folder and load a second copy of it)."""
    for finder in sys.meta_path:
        if isinstance(finder, OldNames):
            return finder
    finder = OldNames()
    sys.meta_path.insert(0, finder)
    return finder
