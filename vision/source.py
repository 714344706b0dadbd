"""Reading what a path names without trusting it: only regular files are read (a device such as /dev/zero never
ends, a FIFO blocks forever), never more bytes than a stated limit, and never anything outside the folder opened.

The type is checked on the opened descriptor, not only on the path, so a file swapped for a FIFO or a device
between the check and the open is still refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from vesalius.vision.errors import LimitError, StudyError

CHUNK = 1 << 20
_NOT_REGULAR = "Open a DICOM file, a PNG/JPEG/TIFF, a zip, a DICOMDIR or a folder saved on disk"


def path_kind(path: Path) -> Literal["file", "folder"]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise StudyError(f"no such file or folder: {path}", "Check the path") from None
    except OSError as exc:
        raise StudyError(f"cannot read {path}: {exc.strerror}", "Check the path and its permissions") from exc
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    raise StudyError(f"{path.name} is not a regular file or folder ({_describe(mode)})", _NOT_REGULAR)


def open_regular(path: Path, name: str, *, follow_links: bool = True) -> BinaryIO:
    """Open `path` for reading if, once opened, it is a regular file. O_NONBLOCK keeps the open of a FIFO from
    waiting for a writer; it changes nothing for a regular file."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise StudyError(f"cannot read {name}: {exc.strerror}", "Check the file's permissions") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StudyError(f"{name} is not a regular file ({_describe(mode)})", _NOT_REGULAR)
    return os.fdopen(fd, "rb")


@dataclass
class Budget:
    """Bytes that may still be read (or inflated) in one load, over all the files it reads."""

    limit: int
    what: str  # what is being read, for the message: "the members of series.zip"
    used: int = 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise LimitError(
                f"{self.what} inflate to more than {_size(self.limit)} in all, over the limit",
                "Open fewer slices at a time (one series), or raise the limit (max_archive_bytes)",
            )


def read_limited(stream: BinaryIO, name: str, limit: int, budget: Budget | None = None) -> bytes:
    """Read `stream` to its end in chunks, refusing it as soon as it passes `limit` bytes: sizes a header or a zip
    directory declares are never trusted."""
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(min(CHUNK, limit + 1 - total)):
        total += len(chunk)
        if budget is not None:
            budget.spend(len(chunk))
        if total > limit:
            raise too_large(name, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class Spool:
    """A stream (a file, a zip member) read into memory only as far as its reader asks, seekable within that: a
    DICOM header is parsed without the pixel data that follows being read or inflated, and a zip member, whose
    own seek inflates again from its start, is never seeked. Every byte read counts towards `limit` (and a
    load's `budget`)."""

    def __init__(self, source: BinaryIO | bytes, name: str, limit: int, budget: Budget | None = None):
        self.name = name
        self._source = None if isinstance(source, bytes) else source
        self._data: bytes | bytearray = source if isinstance(source, bytes) else bytearray()
        self._pos = 0
        self._limit = limit
        self._budget = budget

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        if size is not None and 0 <= size <= len(self._data) - pos:  # held already: the common case, kept short
            self._pos = pos + size
            return bytes(self._data[pos : pos + size])
        end = None if size is None or size < 0 else self._pos + size
        self._fill(end)
        stop = len(self._data) if end is None else min(end, len(self._data))
        out = bytes(memoryview(self._data)[self._pos : stop])
        self._pos = max(self._pos, stop)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            self._fill(None)
        base = {0: 0, 1: self._pos, 2: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def getvalue(self) -> bytes:
        """Everything, to the end."""
        self._fill(None)
        return bytes(self._data)

    def _fill(self, end: int | None) -> None:
        """Read from the source until `end` bytes (None: all of it) are held."""
        while self._source is not None and (end is None or len(self._data) < end):
            want = CHUNK if end is None else max(end - len(self._data), 1 << 16)
            chunk = self._source.read(min(want, self._limit + 1 - len(self._data)))
            if not chunk:
                self._source = None
                break
            if self._budget is not None:
                self._budget.spend(len(chunk))
            self._data += chunk  # type: ignore[operator]  # a bytearray whenever there is a source
            if len(self._data) > self._limit:
                raise too_large(self.name, self._limit)


def read_head(stream: BinaryIO, count: int) -> bytes:
    """The first `count` bytes (fewer only at the end of the stream: a zip member may return short reads)."""
    parts, got = [], 0
    while got < count and (part := stream.read(count - got)):
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class TooLargeError(StudyError):
    """One file over the per-file limit: a series leaves it out (and says so) rather than failing."""


def too_large(name: str, limit: int) -> StudyError:
    return TooLargeError(
        f"{name} is larger than the {_size(limit)} limit for one file", "Open a smaller export, or raise the limit"
    )


def contained(root: Path, candidate: Path) -> Path | None:
    """`candidate`'s real path (links resolved) if it lies inside `root`'s, else None."""
    try:
        real = candidate.resolve(strict=True)
        real.relative_to(root.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):  # missing, a link loop, or outside
        return None
    return real


def _describe(mode: int) -> str:
    for test, what in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return what
    return "not a plain file"


def _size(count: int) -> str:
    return f"{count / 1024**3:.1f} GB" if count >= 1024**3 else f"{count / 1024**2:.0f} MB"
