"""Reading a source's text file line by line, plain or gzip-compressed, with 1-based line numbers.

Bad bytes in one line of a 17-million-line release should cost that line, not the build: a line that is not UTF-8
goes to `Problems` (stop or skip, as the user chose) instead of raising UnicodeDecodeError.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Problems

_GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path) -> BinaryIO:
    """Open `path` for reading bytes, decompressing it when it is gzip (recognised by content, not by name).

    Only a regular file is read: a FIFO or a device would block or never end. The descriptor checked is the one
    read, opened without blocking so that a FIFO with no writer cannot hang the check."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            raise KnowledgeError(f"{path} is not a regular file", "Give the path of a file (not a pipe or device)")
        os.set_blocking(fd, True)
        raw = os.fdopen(fd, "rb")
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return raw
        unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
        unzipped.myfileobj = raw  # GzipFile closes `myfileobj` with itself, as when it opens a file by name
        return unzipped
    except FileNotFoundError:
        raise KnowledgeError(
            f"{path} does not exist", "Check the path, or download the source file to that place"
        ) from None
    except IsADirectoryError:
        raise KnowledgeError(f"{path} is a folder, not a file", "Give the path of the file itself") from None
    except OSError as exc:
        raise KnowledgeError(
            f"cannot read {path}: {exc.strerror or exc}", "Check the file's permissions and that the disk is readable"
        ) from None


def read_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its line ending) for each line of `path`.

    The file is opened now, so a missing or unreadable file raises KnowledgeError at the call, not at first use.
    """
    handle = open_binary(path)
    return _lines(handle, path, problems)


def _lines(handle: BinaryIO, path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    with handle:
        line_no = 0
        try:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problems.report(
                        path, line_no, f"not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})"
                    )
                    continue
                if line_no == 1:
                    # Some tools write a byte-order mark; it would otherwise become part of the first field name.
                    text = text.removeprefix("\ufeff")
                yield line_no, text.rstrip("\r\n")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise KnowledgeError(
                f"{path} is damaged after line {line_no}: {exc}",
                "The compressed file is truncated or corrupt; download it again",
            ) from None
        except OSError as exc:
            raise KnowledgeError(
                f"reading {path} failed after line {line_no}: {exc}", "Check that the disk is readable"
            ) from None
