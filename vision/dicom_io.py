"""DICOM studies: decode one representative frame, apply the modality and VOI LUTs, render 8 bits.

Only allow-listed, non-identifying attributes are read into the summary (see `StudySummary`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import UID

from vision.errors import StudyError
from vision.study import Study, StudySummary, Window

MAX_PIXELS_PER_FRAME = 100_000_000
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DECODER_HINT = (
    "Vesalius decodes JPEG, JPEG-LS, JPEG 2000 and RLE through the pylibjpeg plugins; "
    "12-bit JPEG Extended needs python-gdcm (pip install python-gdcm), or convert the file with "
    "`dcmdjpeg`/`gdcmconv --raw` to an uncompressed transfer syntax"
)


def read_dicom(path: Path, study_id: str) -> Study:
    # pydicom parses elements lazily, so a damaged element can raise on first access anywhere below, with
    # any of a dozen exception types; and it warns about every invalid value, which is noise to a user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _read_dataset(path)
        try:
            return _study(path, ds, study_id)
        except StudyError:
            raise
        except Exception as exc:
            raise StudyError(
                f"{path.name} has a damaged element ({type(exc).__name__}: {_first_line(exc)})",
                "Export or copy the file again from the scanner or PACS",
            ) from exc


def _study(path: Path, ds: pydicom.Dataset, study_id: str) -> Study:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        kind = _sop_class_name(ds)
        if kind == "Media Storage Directory Storage":
            raise StudyError(f"{path.name} is a DICOMDIR (an index of files)", "Open one of the image files it lists")
        raise StudyError(
            f"{path.name} is a DICOM {kind} object without pixel data",
            "Open an image object of the study (CT, MR, X-ray, ultrasound ...) instead",
        )
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError) as exc:
        raise StudyError(
            f"{path.name} has an invalid image size attribute ({_first_line(exc)})",
            "The header is damaged: export the file again",
        ) from exc
    if rows <= 0 or cols <= 0:
        raise StudyError(
            f"{path.name} has no valid Rows/Columns ({rows}x{cols})", "The file is damaged: export it again"
        )
    if rows * cols > MAX_PIXELS_PER_FRAME:
        raise StudyError(
            f"{path.name} has {rows}x{cols} pixels per frame, over the {MAX_PIXELS_PER_FRAME:,} limit",
            "Downsample the image before asking about it",
        )
    frame = frames // 2  # the middle frame is the most representative single view of a cine or stack
    raw = _decode(path, ds, frame if frames > 1 else None)
    values, image, window, unit = _render(ds, raw)
    try:
        summary = _summary(ds, study_id, rows, cols, frames, frame, values, window, unit)
    except (TypeError, ValueError, IndexError) as exc:  # a malformed optional attribute (spacing, bits ...)
        raise StudyError(
            f"{path.name} has an invalid attribute value ({_first_line(exc)})",
            "The header is damaged: export the file again",
        ) from exc
    return Study(path=path, summary=summary, values=values, image=image)


def _summary(
    ds: pydicom.Dataset,
    study_id: str,
    rows: int,
    cols: int,
    frames: int,
    frame: int,
    values: np.ndarray,
    window: Window | None,
    unit: str | None,
) -> StudySummary:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return StudySummary(
        study_id=study_id,
        source_format="dicom",
        modality=str(ds.get("Modality") or "OT"),
        modality_source="dicom",
        body_part=_text(ds, "BodyPartExamined"),
        view=_text(ds, "ViewPosition"),
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        rows=rows,
        columns=cols,
        frames=frames,
        frame_shown=frame if frames > 1 else 0,
        colour=values.ndim == 3,
        bits_stored=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else None,
        physical_unit=unit,
        window=window,
    )


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        try:
            return pydicom.dcmread(path)
        except InvalidDicomError:
            # Files written without the 128-byte preamble are common from older PACS exports.
            ds = pydicom.dcmread(path, force=True)
            if not any(k in ds for k in (*_PIXEL_KEYWORDS, "SOPClassUID", "Modality")):
                raise StudyError(
                    f"{path.name} is neither DICOM nor a PNG/JPEG image",
                    "Pass a DICOM file (.dcm), a PNG or a JPEG",
                ) from None
            return ds
    except StudyError:
        raise
    except Exception as exc:  # pydicom raises many types for damaged files; all mean the same to a user
        raise StudyError(
            f"{path.name} is a truncated or corrupt DICOM file ({type(exc).__name__}: {_first_line(exc)})",
            "Export or copy the file again from the scanner or PACS",
        ) from exc


def _decode(path: Path, ds: pydicom.Dataset, index: int | None) -> np.ndarray:
    tsyntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    try:
        return pixel_array(ds, index=index)
    except (NotImplementedError, RuntimeError) as exc:
        if tsyntax and (not tsyntax.is_transfer_syntax or tsyntax.is_compressed or tsyntax.is_deflated):
            raise StudyError(
                f"{path.name}: cannot decode pixel data in transfer syntax {tsyntax.name} ({tsyntax}): "
                f"{_first_line(exc)}",
                _DECODER_HINT,
            ) from exc
        raise _corrupt_pixels(path, exc) from exc
    except Exception as exc:
        raise _corrupt_pixels(path, exc) from exc


def _corrupt_pixels(path: Path, exc: Exception) -> StudyError:
    return StudyError(
        f"{path.name}: the pixel data is truncated or does not match its header ({_first_line(exc)})",
        "Export or copy the file again from the scanner or PACS",
    )


def _render(ds: pydicom.Dataset, raw: np.ndarray) -> tuple[np.ndarray, Image.Image, Window | None, str | None]:
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2")
    try:
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(raw, ds).astype(np.float32)
            rgb8 = _to_uint8(rgb, 0.0, float(rgb.max()) or 1.0)
            return rgb, Image.fromarray(rgb8, "RGB"), None, None
        if raw.ndim == 3:  # RGB (pydicom already converted YBR to RGB)
            rgb = raw.astype(np.float32)
            top = float(2 ** int(ds.get("BitsStored") or 8) - 1)
            return rgb, Image.fromarray(_to_uint8(rgb, 0.0, top), "RGB"), None, None
        values = apply_modality_lut(raw, ds).astype(np.float32)
        unit = "HU" if ds.get("Modality") == "CT" and "RescaleIntercept" in ds else None
        grey, window = _window(ds, raw, values)
    except StudyError:
        raise
    except Exception as exc:
        raise StudyError(
            f"the display lookup tables of this DICOM file are inconsistent ({_first_line(exc)})",
            "Export the file again, or as an uncompressed image",
        ) from exc
    if photometric == "MONOCHROME1":  # MONOCHROME1 shows low values as white
        grey = 255 - grey
    return values, Image.fromarray(grey, "L"), window, unit


def _window(ds: pydicom.Dataset, raw: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, Window]:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        # Several windows may be stored: the first is the one the modality suggests as default.
        c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        if w > 0:
            return _to_uint8(values, c - w / 2, c + w / 2), Window(center=c, width=w, source="dicom")
    if "VOILUTSequence" in ds:
        out = apply_voi_lut(raw, ds).astype(np.float32)
        lo, hi = float(out.min()), float(out.max())
        return _to_uint8(out, lo, hi), Window(center=(lo + hi) / 2, width=max(hi - lo, 1.0), source="dicom")
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    return _to_uint8(values, lo, hi), Window(center=(lo + hi) / 2, width=hi - lo, source="auto")


def _to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (values.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value).strip() or None if value is not None else None


def _sop_class_name(ds: pydicom.Dataset) -> str:
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if uid is None:
        return "non-image"
    name = UID(str(uid)).name
    return name if name != str(uid) else f"non-image ({uid})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
