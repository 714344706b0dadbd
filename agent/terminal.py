"""Text that reaches a terminal: whatever a file name, a DICOM header, a question or a model wrote, it cannot move
the cursor, recolour, retitle or clear the screen, and bytes that are not UTF-8 cannot crash the writer."""

from __future__ import annotations

import re

import click

# ESC-introduced sequences first (CSI, OSC with its string, two-byte escapes), so that no leftover of one prints.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves, erase
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC (window titles, hyperlinks)
    r"|\x1b[ -/]*[0-~]?"  # the other escapes (charset switches, resets)
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
    r"|[\x90\x9d\x98\x9e\x9f][^\x07\x9c]*[\x07\x9c]?"  # 8-bit string controls
)
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that reorder a line.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_C1_OR_BIDI = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without terminal control sequences; lone surrogates (bytes that were not UTF-8) shown as U+FFFD."""
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def printable_json(document: str) -> str:
    """JSON escapes C0 controls itself; C1 and bidi characters are escaped here, which leaves the data unchanged."""
    document = document.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(document) else document
    return _C1_OR_BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(printable(text), err=err, nl=nl)


def echo_json(document: str) -> None:
    click.echo(printable_json(document))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
