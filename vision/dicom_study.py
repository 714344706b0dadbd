"""One DICOM file (single image, cine loop or enhanced multi-frame volume) into a `Study`, plus the pieces a
series of files shares with it: the summary's header facts and the default display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import UID

from vesalius.vision import coded
from vesalius.vision import dicom_pixels as px
from vesalius.vision.deid import DeidRecord, deidentify
from vesalius.vision.dicom_read import guarded, has_pixels, no_pixels_error, number, text
from vesalius.vision.errors import StudyError
from vesalius.vision.options import IngestOptions
from vesalius.vision.study import DicomRef, FrameSource, Study, StudySummary
from vesalius.vision.windows import VoiLut, Window, auto_window

_WHOLE_DECODE_VALUES = 32_000_000  # up to ~64 MB of 16-bit stored values decoded at once for a native cine
_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def load_file(
    path: Path, ds: pydicom.Dataset, study_id: str, options: IngestOptions, *, source: Path | None = None
) -> Study:
    """`ds` is the parsed file; it is de-identified here, before anything is read from it. `source` is the file
    on disk, where there is one, for the GDCM fallback."""
    name = path.name
    with guarded(name):
        if not has_pixels(ds):
            raise no_pixels_error(ds, name)
        check_syntax(ds, name)
        record = deidentify(ds, options.deid)
        geo = px.geometry(ds, name, options)
        frames = _volume_order(ds, geo.frames)
        stack = "volume" if frames is not None else ("cine" if geo.frames > 1 else "single")
        if frames is None:
            frames = representative_frames(geo.frames, options.cine_frames)
        px.check_voxels(len(frames) * geo.rows * geo.columns, geo.samples, name, options)
        volume, unit, colour_max = _decode_frames(ds, name, frames, geo, source)
        key = len(frames) // 2
        multi = geo.frames > 1
        notes: list[str] = []
        summary = StudySummary(
            study_id=study_id,
            source_format="dicom",
            rows=geo.rows,
            columns=geo.columns,
            stack=stack,
            frames=len(frames),
            source_frames=geo.frames,
            frame_shown=key,
            colour=volume.ndim == 4,
            physical_unit=coded.unit(unit, notes),
            slice_spacing_mm=_spacing_of_frames(ds, frames) if stack == "volume" else None,
            **header_facts(ds, record, notes),
        )
        ref = DicomRef.of(ds)
        sources = tuple(FrameSource(name, f if multi else None, ref) for f in frames)
        return finish(
            path,
            summary,
            volume,
            sources,
            record,
            ds,
            key_frame=frames[key] if multi else None,
            colour_max=colour_max,
            warnings=tuple(notes),
        )


def finish(
    path: Path,
    summary: StudySummary,
    volume: np.ndarray,
    sources: tuple[FrameSource, ...],
    record: DeidRecord,
    ds: pydicom.Dataset,
    *,
    key_frame: int | None,
    colour_max: float = 255.0,
    warnings: tuple[str, ...] = (),
) -> Study:
    """Attach the default display (the file's own window, its VOI LUT, or one fitted to the data)."""
    windows: list[Window] = []
    lut: VoiLut | None = None
    window: Window | None = None
    if not summary.colour:
        windows = [_named(w) for w in px.stored_windows(ds, key_frame)]
        lut = None if windows else px.voi_lut(ds)
        window = windows[0] if windows else (lut.as_window() if lut else auto_window(volume))
    summary = summary.model_copy(update={"window": window, "stored_windows": windows})
    return Study(
        path=path,
        summary=summary,
        volume=volume,
        sources=sources,
        deid=record,
        warnings=(*record.warnings(), *warnings),
        invert=str(ds.get("PhotometricInterpretation") or "").strip() == "MONOCHROME1",
        voi_lut=lut,
        colour_max=colour_max,
    )


def _named(window: Window) -> Window:
    """A window keeps the file's explanation only as a plain name ("BONE"): it is shown to the model."""
    name = coded.window_name(window.name)
    return window if name == window.name else window.model_copy(update={"name": name})


def header_facts(ds: pydicom.Dataset, record: DeidRecord, warnings: list[str]) -> dict[str, Any]:
    """Summary fields read from a de-identified header (allow-listed attributes only). Coded values are checked
    (vesalius.vision.coded): one that is not valid is left out, as if absent, and noted in `warnings`; a dropped Modality
    reads as OT, like a missing one, so the pixels, not the header's text, decide which models run."""
    tsyntax = coded.uid(getattr(ds, "file_meta", {}).get("TransferSyntaxUID"), "TransferSyntaxUID", warnings)
    return {
        "modality": coded.read(ds, "Modality", warnings) or "OT",
        "modality_source": "dicom",
        "body_part": coded.read(ds, "BodyPartExamined", warnings),
        "view": coded.read(ds, "ViewPosition", warnings),
        "laterality": coded.read(ds, "ImageLaterality", warnings) or coded.read(ds, "Laterality", warnings),
        "patient_age_years": _age_years(text(ds, "PatientAge")),
        "patient_sex": coded.read(ds, "PatientSex", warnings),
        "bits_stored": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
        "pixel_spacing_mm": px.pixel_spacing(ds),
        "transfer_syntax": UID(tsyntax).name if tsyntax else None,
        "burned_in_annotation": record.burned_in_annotation,
    }


def check_syntax(ds: pydicom.Dataset, name: str) -> None:
    """A transfer syntax that is not a UID is refused before decoding, whose errors would quote it."""
    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if tsyntax is not None and str(tsyntax).strip() and coded.uid(tsyntax, "TransferSyntaxUID", []) is None:
        raise StudyError(
            f"{name} declares a transfer syntax that is not a valid UID", "The file is damaged: export it again"
        )


def representative_frames(count: int, keep: int) -> list[int]:
    """Evenly spaced frames including the first and last, so a loop's start, middle and end are all seen."""
    if count <= keep:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, keep)})


def decode_into(
    out: np.ndarray,
    ds: pydicom.Dataset,
    name: str,
    index: int | None,
    raw: np.ndarray | None = None,
    source: Path | None = None,
    fallback: dict | None = None,
) -> tuple[str | None, float]:
    """Decode frame `index` (or take its already decoded `raw`) into `out`, a view into the volume: no second
    copy of the study is ever held."""
    raw = px.decode(ds, name, index, source, fallback) if raw is None else raw
    if raw.ndim == 3 or str(ds.get("PhotometricInterpretation") or "") == "PALETTE COLOR":
        rgb, top = px.colour(ds, raw)
        if out.shape != rgb.shape:
            raise px.corrupt_pixels(name, ValueError(f"a colour frame of {rgb.shape} in a stack of {out.shape}"))
        out[...] = rgb
        return None, top
    if out.shape != raw.shape:
        raise px.corrupt_pixels(name, ValueError(f"frame of {raw.shape} in a stack of {out.shape}"))
    return px.physical_into(out, ds, raw, index), 255.0


def _decode_frames(
    ds: pydicom.Dataset, name: str, frames: list[int], geo: px.Geometry, source: Path | None
) -> tuple[np.ndarray, str | None, float]:
    colour = geo.samples == 3 or str(ds.get("PhotometricInterpretation") or "") == "PALETTE COLOR"
    shape = (len(frames), geo.rows, geo.columns, 3) if colour else (len(frames), geo.rows, geo.columns)
    volume = np.empty(shape, dtype=np.float32)
    whole = None
    if geo.frames > 1 and _native(ds) and geo.frames * geo.rows * geo.columns * geo.samples <= _WHOLE_DECODE_VALUES:
        # Uncompressed frames decode fastest in one call; a compressed frame is decoded alone, as needed.
        whole = px.decode(ds, name, None, source)
    unit, top, fallback = None, 255.0, {}
    for slot, frame in enumerate(frames):
        index = frame if geo.frames > 1 else None
        raw = None if whole is None else whole[frame]
        unit, top = decode_into(volume[slot], ds, name, index, raw, source, fallback)
    return volume, unit, top


def _native(ds: pydicom.Dataset) -> bool:
    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    return tsyntax is not None and UID(str(tsyntax)).is_transfer_syntax and not UID(str(tsyntax)).is_compressed


def _volume_order(ds: pydicom.Dataset, count: int) -> list[int] | None:
    """Frames in spatial order when the frames of an enhanced multi-frame object are distinct planes; None for
    a cine loop (or several planes repeated over time, which is a loop of volumes: shown as a cine)."""
    if count < 2 or "PerFrameFunctionalGroupsSequence" not in ds:
        return None
    iop = px.orientation(ds, 0)
    positions = [px.position(ds, i) for i in range(count)]
    if iop is None or any(p is None for p in positions):
        return None
    normal = np.cross(iop[:3], iop[3:])
    depth = np.array([float(np.dot(p, normal)) for p in positions])
    if len(np.unique(np.round(depth, 3))) != count:
        return None
    return [int(i) for i in np.argsort(depth, kind="stable")]


def _spacing_of_frames(ds: pydicom.Dataset, frames: list[int]) -> float | None:
    measures = px.frame_item(ds, frames[0], "PixelMeasuresSequence")
    for source in (measures, ds):
        if source is not None:
            value = number(source, "SpacingBetweenSlices") or number(source, "SliceThickness")
            if value and value > 0:
                return value
    return None


def _age_years(age: str | None) -> float | None:
    """PatientAge is "nnnY/M/W/D" (PS3.5 AS)."""
    if not age or len(age) != 4 or not age[:3].isdigit() or age[3] not in _AGE_UNITS:
        return None
    return round(int(age[:3]) * _AGE_UNITS[age[3]], 2)
