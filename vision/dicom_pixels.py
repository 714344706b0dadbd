"""DICOM pixels: size checks before decoding, frame decoding, the modality LUT and the file's display settings.

Enhanced multi-frame objects keep rescale, window and position per frame in functional groups; `frame_item`
finds them there or at the top level, so the rest of the code needs no second path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from struct import unpack

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from vesalius.vision import codestream, gdcm_fallback
from vesalius.vision.dicom_read import INTERRUPTS, first_line, number, text
from vesalius.vision.errors import StudyError
from vesalius.vision.options import IngestOptions
from vesalius.vision.windows import VoiLut, Window

# Which package decodes what (pydicom's decoder plugins), for the error a user sees when a file cannot be decoded.
_JPEG_FAMILY = "1.2.840.10008.1.2.4."  # JPEG, JPEG-LS, JPEG 2000 and HTJ2K transfer syntaxes
_NAMES = {"1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression"}  # newer than pydicom 3.0's dictionary
_REMEDY = (
    "The installed decoders (pylibjpeg, its libjpeg/openjpeg/rle plugins and, where it installs, python-gdcm: "
    "pip install 'vesalius[gdcm]') cannot read it: convert the file to an uncompressed transfer syntax "
    "(for example `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`) and open the copy"
)


@dataclass(frozen=True)
class Geometry:
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int


def geometry(ds: pydicom.Dataset, name: str, options: IngestOptions) -> Geometry:
    """Image size from the header, refused when over the limits: decoding has not started yet."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.get("BitsAllocated") or 8)
    except (TypeError, ValueError) as exc:
        raise StudyError(
            f"{name} has an invalid image size attribute ({first_line(exc)})", "The header is damaged: export it again"
        ) from exc
    if rows <= 0 or cols <= 0 or frames <= 0 or samples not in (1, 3):
        raise StudyError(
            f"{name} has an invalid image size ({rows}x{cols} pixels, {frames} frames, {samples} samples per pixel)",
            "The header is damaged: export the file again",
        )
    if rows * cols > options.max_pixels_per_frame:
        raise StudyError(
            f"{name} has {rows}x{cols} pixels per frame, over the {options.max_pixels_per_frame:,} limit",
            "Downsample the image before asking about it, or raise the limit",
        )
    if frames > options.max_frames:
        raise StudyError(
            f"{name} declares {frames:,} frames, over the {options.max_frames:,} limit",
            "Export a shorter sequence, or raise the limit",
        )
    return Geometry(rows, cols, frames, samples, bits)


def check_voxels(count: int, samples: int, name: str, options: IngestOptions) -> None:
    if count * samples > options.max_voxels:
        gigabytes = count * samples * 4 / 1024**3
        raise StudyError(
            f"{name} holds {count:,} voxels ({gigabytes:.1f} GB as 32-bit values), over the "
            f"{options.max_voxels:,} limit",
            "Open fewer slices (a sub-folder or one series), or raise the limit",
        )


def decode(
    ds: pydicom.Dataset, name: str, index: int | None, source: Path | None = None, fallback: dict | None = None
) -> np.ndarray:
    """Stored values of frame `index` (None: a single-frame file). Colour comes back as RGB. `source`, the file
    on disk, lets GDCM's own reader try, in a child process, where every in-process decoder failed; `fallback`
    keeps what it decoded (all frames at once) for the next frame of the same file."""
    tsyntax = UID(str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")))
    if not tsyntax or (tsyntax.is_transfer_syntax and not tsyntax.is_compressed):  # native (deflate is inflated)
        try:
            return pixel_array(ds, index=index)
        except (MemoryError, *INTERRUPTS):
            raise
        except BaseException as exc:
            raise corrupt_pixels(name, exc) from exc
    if str(tsyntax).startswith(_JPEG_FAMILY):
        _check_codestream(ds, name, index)
    reasons = []
    for plugin in decoder_plugins(tsyntax):
        try:
            return pixel_array(ds, index=index, decoding_plugin=plugin)
        except (MemoryError, *INTERRUPTS):
            raise
        except BaseException as exc:  # noqa: BLE001 - pyo3 panics of the Rust decoders are BaseExceptions
            reasons.append(f"{plugin}: {first_line(exc)}")
    fallback = {} if fallback is None else fallback
    if "gdcm" not in fallback:
        # GDCM adds something only for greyscale JPEG-family data (it decodes nothing else pydicom cannot).
        useful = int(ds.get("SamplesPerPixel") or 1) == 1 and str(tsyntax).startswith(_JPEG_FAMILY)
        fallback["gdcm"] = gdcm_fallback.decode_file(source) if source is not None and useful else None
    frames = fallback["gdcm"]
    if frames is not None and (index or 0) < len(frames):
        return frames[index or 0]
    label = _NAMES.get(str(tsyntax), tsyntax.name if tsyntax.name != str(tsyntax) else "unknown")
    why = "; ".join(reasons)[:400] if reasons else "no installed decoder supports it"
    raise StudyError(f"{name}: cannot decode pixel data in transfer syntax {label} ({tsyntax}): {why}", _REMEDY)


def _check_codestream(ds: pydicom.Dataset, name: str, index: int | None) -> None:
    """Refuse a frame whose codestream declares more pixels than the DICOM header, before a decoder allocates them."""
    try:
        frame = get_frame(ds.PixelData, index or 0, number_of_frames=int(ds.get("NumberOfFrames") or 1))
    except Exception:  # noqa: BLE001 - an unreadable fragment is left for the decoders to report
        return
    size = codestream.declared_size(frame)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if size is not None and size[0] * size[1] > rows * columns:
        raise StudyError(
            f"{name}: the compressed frame declares {size[1]}x{size[0]} pixels, the header {columns}x{rows}",
            "The file is damaged: export or copy it again from the scanner or PACS",
        )


def decoder_plugins(tsyntax: UID) -> list[str]:
    """pydicom's decoder plugins for `tsyntax`, in its order, without GDCM: its plugin crashes the interpreter
    (a segmentation fault) on some damaged JPEG data, found by fuzzing; GDCM runs only in a child process."""
    try:
        return [p for p in get_decoder(tsyntax).available_plugins if p != "gdcm"]
    except NotImplementedError:  # a syntax pydicom has no decoder for
        return []


def corrupt_pixels(name: str, exc: Exception) -> StudyError:
    return StudyError(
        f"{name}: the pixel data is truncated or does not match its header ({first_line(exc)})",
        "Export or copy the file again from the scanner or PACS",
    )


def frame_item(ds: pydicom.Dataset, index: int | None, sequence: str) -> pydicom.Dataset | None:
    """The first item of functional-group `sequence` for frame `index`: per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if index is not None and per_frame and index < len(per_frame):
        seq = per_frame[index].get(sequence)
        if seq:
            return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


def physical_into(out: np.ndarray, ds: pydicom.Dataset, raw: np.ndarray, index: int | None) -> str | None:
    """Write `raw` through the modality LUT (rescale or LUT sequence, top level or per frame) into `out` (float32,
    a slice of the volume, so no temporary copy of the frame is made); returns the unit."""
    if ds.get("ModalityLUTSequence"):
        out[...] = apply_modality_lut(raw, ds)
        return text(ds.ModalityLUTSequence[0], "ModalityLUTType")
    out[...] = raw
    source = ds if "RescaleSlope" in ds or "RescaleIntercept" in ds else None
    source = source or frame_item(ds, index, "PixelValueTransformationSequence")
    if source is None:
        return None
    slope = number(source, "RescaleSlope")
    intercept = number(source, "RescaleIntercept")
    if slope is not None and slope != 1.0:
        out *= np.float32(slope)
    if intercept:
        out += np.float32(intercept)
    unit = text(source, "RescaleType")
    if unit in (None, "US") and ds.get("Modality") == "CT":  # "US" = unspecified; CT values are Hounsfield units
        unit = "HU"
    return None if unit == "US" else unit


def stored_windows(ds: pydicom.Dataset, index: int | None) -> list[Window]:
    """The windows the file suggests, the first being the modality's default (PS3.3 C.11.2.1.2)."""
    source = ds if "WindowCenter" in ds else frame_item(ds, index, "FrameVOILUTSequence")
    if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
        return []
    centers, widths = _multi(source["WindowCenter"].value), _multi(source["WindowWidth"].value)
    explanations = _multi(source.get("WindowCenterWidthExplanation") or [])
    function = str(source.get("VOILUTFunction") or ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    windows = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        c, w = float(c), float(w)
        if not (np.isfinite(c) and np.isfinite(w)) or w <= 0 or (function == "LINEAR" and w < 1):
            continue
        label = str(explanations[i]).strip() if i < len(explanations) else ""
        # Explanations are meant to be names like "BONE"; anything longer may be free text and is dropped.
        name = label if label and len(label) <= 32 and all(ch.isalnum() or ch in " _-" for ch in label) else None
        windows.append(Window(center=c, width=w, function=function, source="dicom", name=name))
    return windows


def _multi(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def voi_lut(ds: pydicom.Dataset) -> VoiLut | None:
    """The first VOI LUT Sequence table (PS3.3 C.11.2.1.1), or None when the file has none usable."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[0]
    descriptor = [int(v) for v in item.LUTDescriptor]
    entries, first, bits = descriptor[0] or 2**16, descriptor[1], descriptor[2]
    if bits not in (8, *range(10, 17)):
        return None
    data = item["LUTData"]
    if data.VR == "OW" and isinstance(data.value, bytes):
        endian = ">" if not ds.original_encoding[1] else "<"
        table = np.asarray(unpack(f"{endian}{entries}H", data.value[: entries * 2]), dtype=np.uint16)
    else:
        table = np.asarray(data.value, dtype=np.uint16)
    if first >= 2**15 and int(ds.get("PixelRepresentation") or 0) == 1:
        first -= 2**16  # US/SS ambiguity: signed images store a negative first value as unsigned
    return VoiLut(first_mapped=first, table=table[:entries], bits=bits)


def colour(ds: pydicom.Dataset, raw: np.ndarray) -> tuple[np.ndarray, float]:
    """RGB values (integers) and their full-scale value (palette colour goes through its lookup tables)."""
    if str(ds.get("PhotometricInterpretation") or "") == "PALETTE COLOR":
        rgb = apply_color_lut(raw, ds)
        if rgb.dtype.itemsize == 2 and "RedPaletteColorLookupTableData" in ds and ds.original_encoding[1] is False:
            # pydicom 3.0.2 reads non-segmented palette data in the machine's byte order even in a big endian file.
            rgb = rgb.byteswap()
        return rgb, float(np.iinfo(rgb.dtype).max)
    return raw, float(2 ** int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8) - 1)


def position(ds: pydicom.Dataset, index: int | None) -> np.ndarray | None:
    source = ds if "ImagePositionPatient" in ds else frame_item(ds, index, "PlanePositionSequence")
    ipp = source.get("ImagePositionPatient") if source is not None else None
    return _vector(ipp, 3)


def orientation(ds: pydicom.Dataset, index: int | None) -> np.ndarray | None:
    source = ds if "ImageOrientationPatient" in ds else frame_item(ds, index, "PlaneOrientationSequence")
    iop = source.get("ImageOrientationPatient") if source is not None else None
    return _vector(iop, 6)


def _vector(value: object, size: int) -> np.ndarray | None:
    try:
        vec = np.asarray([float(v) for v in value], dtype=np.float64) if value is not None else None
    except (TypeError, ValueError):
        return None
    return vec if vec is not None and vec.shape == (size,) and np.isfinite(vec).all() else None


def pixel_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    measures = frame_item(ds, None, "PixelMeasuresSequence")
    for source in (ds, measures):
        if source is None:
            continue
        spacing = _vector(source.get("PixelSpacing") or source.get("ImagerPixelSpacing"), 2)
        if spacing is not None and (spacing > 0).all():
            return float(spacing[0]), float(spacing[1])
    return None
