"""Checks on text a person typed (a question, a search, a code) before anything acts on it."""

from __future__ import annotations

from agent.errors import AgentError
from agent.terminal import printable

MAX_QUESTION_CHARS = 4000


def user_text(
    text: str, what: str = "question", example: str = 'vesalius ask --study scan.dcm "Is there an effusion?"'
) -> str:
    """`text` with its whitespace collapsed, or an AgentError naming what is wrong with it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # the shell passed bytes that are not UTF-8 (surrogate-escaped by Python)
        raise AgentError(
            f"the {what} is not UTF-8 text (an undecodable byte at character {exc.start + 1})",
            "Type it again in a UTF-8 terminal, or convert the file it came from to UTF-8",
        ) from None
    text = " ".join(printable(text).split())  # control sequences have no meaning in a question, only effects
    if not text:
        raise AgentError(f"the {what} is empty", f"Ask something, e.g. {example}")
    if len(text) > MAX_QUESTION_CHARS:
        raise AgentError(f"the {what} is {len(text):,} characters long", f"Keep it under {MAX_QUESTION_CHARS:,}")
    return text
