"""Package attributes that import their module on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: `where` maps each public name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where[name]), name)
        namespace[name] = value  # later look-ups do not come back here
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__


def installed_name(name: str) -> None:
    """The top-level folders install under `vesalius.`; imported by their bare name (from a source tree on the
    path) they would be a second copy of every module and class."""
    if not name.startswith("vesalius."):
        raise ImportError(f"'{name}' is installed as 'vesalius.{name}': use `import vesalius.{name}`", name=name)
