"""Naming a source's licence from what its file states (often only a URL)."""

from __future__ import annotations

# The licences the project's open sources use, by the URL their headers give (without scheme or trailing slash).
_BY_URL = {
    "creativecommons.org/publicdomain/zero/1.0": "CC0 1.0",
    "creativecommons.org/licenses/by/4.0": "CC BY 4.0",
    "creativecommons.org/licenses/by/3.0": "CC BY 3.0",
    "creativecommons.org/licenses/by-sa/4.0": "CC BY-SA 4.0",
}


def describe_licence(stated: str) -> str:
    """ "CC0 1.0 (https://creativecommons.org/publicdomain/zero/1.0/)" for a known URL; otherwise the text as stated."""
    stated = stated.strip().strip('"').strip()
    key = stated.split("://", 1)[-1].rstrip("/")
    name = _BY_URL.get(key)
    return f"{name} ({stated})" if name else stated
