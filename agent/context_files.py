"""A file given as clinical context: a plain-text report, a FHIR R4 report (JSON), or a DICOM Structured Report,
told apart by their content rather than their names. Each reader takes only what describes the findings (codes,
values, conclusions) and never the patient's, the reporter's or the dates; `clinical_context` then removes what
free text may still name."""

from __future__ import annotations

from pathlib import Path

from vesalius.agent.context import MAX_CONTEXT_CHARS
from vesalius.agent.errors import AgentError
from vesalius.vision.sniff import HEAD_BYTES, is_dicom

MAX_TEXT_BYTES = 64 * 1024
MAX_FILE_BYTES = 16 * 2**20  # a DICOM SR; a FHIR report is held to less by its reader


def read_context_file(path: Path) -> str:
    """The context `path` holds, as text ready for `clinical_context`; one clear error for anything else."""
    try:
        if not path.is_file():
            raise AgentError(
                f"the context file {path} is not a file", "Give a text report, a FHIR JSON report or a DICOM SR file"
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise AgentError(f"cannot read the context file {path} ({exc.strerror})", "Check the path") from exc
    return context_from_bytes(data, path.name)


def context_from_bytes(data: bytes, name: str) -> str:
    """The context in `data` (a file called `name`, for messages): a DICOM SR, a FHIR report or UTF-8 text."""
    if len(data) > MAX_FILE_BYTES:
        raise AgentError(f"the context file {name} is over 16 MB", "Give the report alone, not the images")
    if is_dicom(data[:HEAD_BYTES]):
        from vesalius.agent.sr_context import sr_context

        return _bounded(sr_context(data, name))
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":  # text reports do not open with a brace; JSON objects do
        from vesalius.agent.fhir_context import fhir_context

        return _bounded(fhir_context(data, name))
    if len(data) > MAX_TEXT_BYTES:
        raise AgentError(f"the context file {name} is over 64 KB", "Give the history and key findings only")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError(
            f"the context file {name} is not UTF-8 text, a FHIR JSON report or a DICOM file",
            "Save a text report as plain UTF-8",
        ) from None


def _bounded(text: str) -> str:
    """A structured report read as text stays within what a thread keeps; its readers put what matters first."""
    return text if len(text) <= MAX_CONTEXT_CHARS else text[: MAX_CONTEXT_CHARS - 1].rstrip() + "…"
