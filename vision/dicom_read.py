"""Reading DICOM datasets: parsing, the damage guard every access runs under, and header facts.

pydicom parses elements lazily, so a damaged element can raise on first access anywhere, with any of a dozen
exception types; and it warns about every invalid value, which is noise to a user. `guarded` turns both into
one `StudyError` naming the file.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from vesalius.vision import coded
from vesalius.vision.errors import StudyError
from vesalius.vision.source import Spool

# Decoders written in Rust (pylibjpeg-rle) raise pyo3's PanicException on damaged data, which derives from
# BaseException: only these are let through, everything else a file can cause becomes a StudyError.
INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@contextmanager
def quiet() -> Iterator[None]:
    """No pydicom warnings or log records while a file is handled: they quote element values, which may be
    identifying (an invalid PatientName is logged verbatim), and would reach a log before de-identification."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def guarded(name: str) -> Iterator[None]:
    with quiet():
        try:
            yield
        except StudyError:
            raise
        except MemoryError:
            raise StudyError(f"{name} is too large to decode in the memory available", "Open a smaller study") from None
        except INTERRUPTS:
            raise
        except BaseException as exc:
            raise StudyError(
                f"{name} has a damaged element ({type(exc).__name__}: {first_line(exc)})",
                "Export or copy the file again from the scanner or PACS",
            ) from exc


def read_dataset(
    source: bytes | Spool, name: str, *, headers_only: bool = False, limit: int | None = None
) -> pydicom.Dataset:
    """Parse a DICOM file (its bytes, or a `Spool` read only as far as the parse goes), accepting files without
    the 128-byte preamble. Callers check the first bytes (`sniff.is_dicom`) first. `limit` bounds what a
    deflated dataset may inflate to (default: 64 times the file)."""
    buffer = source if isinstance(source, Spool) else io.BytesIO(source)
    stream = _Parse(buffer, name)
    with quiet():
        try:
            _check_deflate(buffer, name, limit)
            try:
                return pydicom.dcmread(stream, stop_before_pixels=headers_only)
            except InvalidDicomError:
                # Files written without the preamble are common from older PACS exports.
                stream.seek(0)
                ds = pydicom.dcmread(stream, stop_before_pixels=headers_only, force=True)
                if not any(k in ds for k in (*PIXEL_KEYWORDS, "SOPClassUID", "Modality", "DirectoryRecordSequence")):
                    raise not_dicom_error(name) from None
                _infer_transfer_syntax(ds)
                return ds
        except StudyError:
            raise
        except INTERRUPTS:
            raise
        except BaseException as exc:  # pydicom raises many types for damaged files; all mean the same to a user
            raise StudyError(
                f"{name} is a truncated or corrupt DICOM file ({type(exc).__name__}: {first_line(exc)})",
                "Export or copy the file again from the scanner or PACS",
            ) from exc


def not_dicom_error(name: str) -> StudyError:
    return StudyError(
        f"{name} is neither DICOM nor a PNG, JPEG or TIFF image",
        "Pass a DICOM file (.dcm), a folder or zip of DICOM slices, a DICOMDIR, or a PNG/JPEG/TIFF",
    )


# pydicom reads each element's header with one 8-byte read. A real header has at most a few hundred thousand
# elements (an enhanced multi-frame object with thousands of per-frame items); a file of one element repeated over
# megabytes would parse as millions, at several microseconds each.
MAX_ELEMENT_READS = 1_000_000
# Tags ascend within a dataset, so an element header read again at once (or with one value between) is never data:
# a run of them is padding (zero bytes read as the empty element (0000,0000)) or a forged file. After the pixel
# data it is padding (some writers fill files to a block size) and the parse ends there; before it, the file is
# refused. Items (FFFE,E000) of a sequence may repeat legitimately and are not counted.
MAX_REPEATS = 64
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little and big endian
_ITEM_GROUPS = (b"\xfe\xff", b"\xff\xfe")


class _Parse:
    """The file as pydicom reads it, with bounds on how long one parse may go on."""

    def __init__(self, buffer: Spool | io.BytesIO, name: str):
        self._read = buffer.read
        self.seek, self.tell = buffer.seek, buffer.tell
        self._name = name
        self._reads = 0
        self._recent = (b"", b"")  # the last two 8-byte reads: element headers, or 8-byte values between them
        self._repeats = 0
        self._after_pixels = False

    def read(self, size: int | None = -1) -> bytes:
        data = self._read(size)
        if size != 8:
            return data
        self._reads += 1
        if data[:4] in _PIXEL_DATA_TAGS:
            self._after_pixels = True
        repeated = data in self._recent and data[:2] not in _ITEM_GROUPS
        self._repeats = self._repeats + 1 if repeated else 0
        self._recent = (self._recent[1], data)
        if self._repeats > MAX_REPEATS and self._after_pixels:
            self._read = _nothing  # trailing padding: the dataset ends here
            return b""
        if self._reads > MAX_ELEMENT_READS or self._repeats > MAX_REPEATS:
            raise StudyError(
                f"{self._name} is not a readable DICOM file: its header does not end (runs of empty or repeated "
                "elements, as in a file of zeros)",
                "Export or copy the file again from the scanner or PACS",
            )
        return data


def _nothing(size: int | None = -1) -> bytes:
    return b""


_DEFLATE_SYNTAX = b"1.2.840.10008.1.2.1.99"
_DEFLATE_RATIO = 64  # without a stated limit, a deflated dataset may not inflate past 64 times its file size


def _check_deflate(buffer: Spool | io.BytesIO, name: str, limit: int | None) -> None:
    """pydicom inflates a Deflated Explicit VR dataset in one unbounded call: a few megabytes can inflate to
    gigabytes. The inflated size is measured here first, in chunks, and refused past `limit`."""
    head = buffer.read(4096)
    buffer.seek(0)
    if _DEFLATE_SYNTAX not in head:
        return
    data = buffer.getvalue()
    end = _meta_end(data)
    limit = limit if limit is not None else len(data) * _DEFLATE_RATIO
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, pending = 0, data[end:]
    try:
        while pending and not inflater.eof:
            total += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
            if total > limit:
                raise StudyError(
                    f"{name}: its deflated dataset inflates to more than {limit / 1024**2:.0f} MB, over the limit",
                    "Open a smaller export, or raise the limit",
                )
    except zlib.error:
        return  # damaged deflate data: pydicom reports it


def _infer_transfer_syntax(ds: pydicom.Dataset) -> None:
    """A file without a meta header still has an encoding pydicom detected while parsing: native pixel data can
    then be read under that uncompressed syntax."""
    if ds.file_meta.get("TransferSyntaxUID") or "PixelData" not in ds:
        return
    implicit, little = ds.original_encoding
    if implicit is None or little is None or (implicit and not little):
        return
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _meta_end(data: bytes) -> int:
    """Offset just past the file meta group (0002,xxxx), always explicit VR little endian (PS3.10 7.1)."""
    at = 132 if data[128:132] == b"DICM" else 0
    while at + 8 <= len(data) and data[at : at + 2] == b"\x02\x00":
        vr = data[at + 4 : at + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            if at + 12 > len(data):
                return len(data)
            at += 12 + int.from_bytes(data[at + 8 : at + 12], "little")
        else:
            at += 8 + int.from_bytes(data[at + 6 : at + 8], "little")
    return at


def sop_class_name(ds: pydicom.Dataset) -> str:
    uid = coded.uid(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID"), "SOPClassUID", [])
    if uid is None:  # absent, or not a UID: its text is not quoted (it could be anything)
        return "non-image"
    name = UID(uid).name
    return name if name != uid else f"non-image ({uid})"


def is_dicomdir(ds: pydicom.Dataset) -> bool:
    uid = ds.get("file_meta", pydicom.Dataset()).get("MediaStorageSOPClassUID")
    return str(uid or "") == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds


def has_pixels(ds: pydicom.Dataset) -> bool:
    return any(k in ds for k in PIXEL_KEYWORDS)


def no_pixels_error(ds: pydicom.Dataset, name: str) -> StudyError:
    return StudyError(
        f"{name} is a DICOM {sop_class_name(ds)} object without pixel data",
        "Open an image object of the study (CT, MR, X-ray, ultrasound ...) instead",
    )


def text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return (str(value).strip() or None) if value is not None else None


def number(ds: pydicom.Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def first_line(exc: BaseException) -> str:
    """An exception's first line for a message: pydicom's may quote an element's value, written by whoever made
    the file, so control characters are replaced and the length capped."""
    lines = str(exc).strip().splitlines()
    return coded.printable(lines[0][:200] if lines else type(exc).__name__)
