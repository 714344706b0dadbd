"""Checks on text a person typed (a question, a search, a code) before anything acts on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from vesalius.agent.errors import AgentError
from vesalius.agent.terminal import printable

MAX_QUESTION_CHARS = 4000
MAX_LINE_BYTES = 64 * 1024


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


def lines(stream: BinaryIO) -> Iterator[str | AgentError]:
    """The lines of `stream` (a pipe, a file), decoded by the question check's rules, or the reason one cannot be
    read: a line over MAX_LINE_BYTES is refused and skipped without being held, and one that does not end within
    64 times that (/dev/zero) ends the input, so neither memory nor time is spent on it without bound."""
    while raw := stream.readline(MAX_LINE_BYTES):
        if not raw.endswith(b"\n") and len(raw) == MAX_LINE_BYTES:
            yield AgentError(f"a line is over {MAX_LINE_BYTES // 1024} KB long", "Put one question or query per line")
            for _ in range(64):
                more = stream.readline(MAX_LINE_BYTES)
                if not more or more.endswith(b"\n"):
                    break
            else:
                return
            continue
        yield raw.decode("utf-8", "surrogateescape")  # undecodable bytes are named by user_text
