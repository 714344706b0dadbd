"""A multipart upload streamed into a private folder of the study store, with its limits counted as it arrives.

The client's file names are never used: parts are written as part-0000, part-0001 ... (what a file is, is decided by
its bytes), so a name such as `../../etc/passwd` or `/dev/zero` names nothing. Starlette's own form parser would
spool the raw, still identifiable bytes to the system's temporary folder; this one writes only inside the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 256  # a form field (modality, series, window) is a short word


class UploadError(Exception):
    def __init__(self, status: int, problem: str, remedy: str):
        super().__init__(problem)
        self.status, self.problem, self.remedy = status, problem, remedy


@dataclass
class Upload:
    """The files and fields of one multipart request, as they arrive."""

    folder: Path
    max_bytes: int
    max_files: int
    files: list[Path] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    received: int = 0
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _header: bytes = b""
    _value: bytes = b""
    _out: BinaryIO | None = None
    _field: tuple[str, bytearray] | None = None

    def parser(self, content_type: str) -> MultipartParser:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise UploadError(
                415, "an upload must be multipart/form-data", "Send the files as form fields named 'files'"
            )
        callbacks = {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add("_header", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        return MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data[:1024])

    def _begin(self) -> None:
        self._headers, self._header, self._value = {}, b"", b""

    def _header_end(self) -> None:
        self._headers[self._header.strip().lower()] = self._value.strip()
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in params:
            self._field = (name, bytearray())
            return
        if len(self.files) >= self.max_files:
            raise UploadError(
                413, f"the upload has more than {self.max_files} files", "Send fewer files, or one zip of the series"
            )
        path = self.folder / f"part-{len(self.files):04d}"
        # O_EXCL and O_NOFOLLOW: the file is new and ours, whatever already lies in the folder.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._out = os.fdopen(fd, "wb")
        self.files.append(path)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
        elif self._field is not None:
            self._field[1].extend(data[start:end])
            if len(self._field[1]) > MAX_FIELD_BYTES:
                raise UploadError(413, f"the form field {self._field[0][:40]!r} is too long", "Send a short value")

    def _end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._field is not None:
            name, value = self._field
            self.fields[name] = value.decode("utf-8", "replace").strip()
            self._field = None

    def feed(self, parser: MultipartParser, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise UploadError(
                413,
                f"the upload is over the {self.max_bytes // 1024**2} MB limit",
                "Send one series at a time, or raise VESALIUS_MAX_UPLOAD_MB",
            )
        parser.write(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
