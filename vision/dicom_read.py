"""Reading DICOM datasets: parsing, the damage guard every access runs under, and header facts.

pydicom parses elements lazily, so a damaged element can raise on first access anywhere, with any of a dozen
exception types; and it warns about every invalid value, which is noise to a user. `guarded` turns both into
one `StudyError` naming the file.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from vision.errors import StudyError

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


def read_dataset(source: Path | bytes, name: str, *, headers_only: bool = False) -> pydicom.Dataset:
    """Parse a DICOM file (path or bytes), accepting files without the 128-byte preamble."""
    with quiet():
        try:
            try:
                return pydicom.dcmread(_open(source), stop_before_pixels=headers_only)
            except InvalidDicomError:
                # Files written without the preamble are common from older PACS exports.
                ds = pydicom.dcmread(_open(source), stop_before_pixels=headers_only, force=True)
                if not any(k in ds for k in (*PIXEL_KEYWORDS, "SOPClassUID", "Modality", "DirectoryRecordSequence")):
                    raise StudyError(
                        f"{name} is neither DICOM nor a PNG, JPEG or TIFF image",
                        "Pass a DICOM file (.dcm), a folder or zip of DICOM slices, a DICOMDIR, or a PNG/JPEG/TIFF",
                    ) from None
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


def _open(source: Path | bytes) -> Path | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def sop_class_name(ds: pydicom.Dataset) -> str:
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if uid is None:
        return "non-image"
    name = UID(str(uid)).name
    return name if name != str(uid) else f"non-image ({uid})"


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
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
