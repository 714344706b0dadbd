"""PNG, JPEG and TIFF studies: no tags, so the modality is whatever the user says (or unknown).

Only pixels are read: text chunks, EXIF and TIFF tags (which may name a patient) are never looked at.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from vesalius.vision.colour import is_grey_rgb
from vesalius.vision.dicom_read import first_line
from vesalius.vision.errors import StudyError
from vesalius.vision.options import IngestOptions
from vesalius.vision.source import CHUNK, too_large
from vesalius.vision.study import FrameSource, Study, StudySummary
from vesalius.vision.windows import Window, auto_window

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}
_OPEN_FORMATS = ("PNG", "JPEG", "TIFF")


def read_image(path: Path, stream: BinaryIO, options: IngestOptions) -> Study:
    """`stream` is the opened file, at its start."""
    study_id = _digest(stream, path.name, options.max_file_bytes)
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF and the like: noise to a user
            values, bits, fmt, pages, original = _read(path, stream, options)
    except StudyError:
        raise
    except Image.DecompressionBombError as exc:
        raise StudyError(f"{path.name} declares an image too large to open ({exc})", "Downscale it first") from exc
    except MemoryError:
        raise StudyError(f"{path.name} is too large to decode in the memory available", "Downscale it first") from None
    except Exception as exc:  # Pillow's decoders raise many types on damaged data, all one to a user
        reason = first_line(exc)
        raise StudyError(f"{path.name} is a damaged or truncated image ({reason})", "Export the image again") from exc
    colour = values.ndim == 3
    summary = StudySummary(
        study_id=study_id,
        source_format=fmt,
        modality=options.modality or "OT",
        modality_source="user" if options.modality else "assumed",
        rows=values.shape[0],
        columns=values.shape[1],
        colour=colour,
        bits_stored=bits,
        window=None if colour else _window(values, bits),
    )
    notes = [f"{path.name} has {pages} pages: the first is shown"] if pages > 1 else []
    if original != (values.shape[1], values.shape[0]):
        notes.append(
            f"{path.name} is {original[0]}x{original[1]} pixels: it was downscaled to {values.shape[1]}x"
            f"{values.shape[0]} for analysis (plain images are worked on at up to {options.max_image_side} px a "
            "side), so fine detail may be lost"
        )
    return Study(
        path=path,
        summary=summary,
        volume=values[None],
        sources=(FrameSource(path.name),),
        warnings=tuple(notes),
        colour_max=255.0,
    )


def _digest(stream: BinaryIO, name: str, limit: int) -> str:
    """The content hash, read in chunks: the file is never held whole, only its decoded (and downscaled) pixels."""
    digest, total = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise too_large(name, limit)
        digest.update(chunk)
    return digest.hexdigest()[:16]


def _read(path: Path, stream: BinaryIO, options: IngestOptions) -> tuple[np.ndarray, int, str, int, tuple[int, int]]:
    # Only the formats the first bytes were checked for: Pillow would otherwise try every decoder it has.
    with Image.open(stream, formats=_OPEN_FORMATS) as img:
        if img.width * img.height > options.max_pixels_per_frame:
            raise StudyError(
                f"{path.name} is {img.width}x{img.height} pixels, over the {options.max_pixels_per_frame:,} limit",
                "Downscale the image before asking about it",
            )
        original = img.size
        pages = getattr(img, "n_frames", 1)  # a multi-page TIFF: the first page is the image, the rest thumbnails
        fmt = _FORMATS.get(img.format or "", "png")
        values, bits = _values(_shrink(img, options.max_image_side))
        return values, bits, fmt, pages, original


def _shrink(img: Image.Image, side: int) -> Image.Image:
    """`img` (not yet loaded) brought within `side` pixels a side, within a memory budget: at most the decoded
    image in its own mode (a JPEG is decoded already reduced, by DCT scaling) plus the reduced copy; the float32
    copy analysis needs is made only at the reduced size."""
    scale = side / max(img.size)
    if scale >= 1:
        img.load()
        return img
    img.draft(None, (max(1, math.ceil(img.width * scale)), max(1, math.ceil(img.height * scale))))
    if img.mode in ("1", "P", "PA"):  # palette indices cannot be averaged: colours first
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    # In place: the full size is freed. Pillow's integer pre-reduction has no 16-bit mode: those resize directly.
    gap = None if img.mode.startswith("I;16") else 2.0
    img.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=gap)
    return img


def _window(values: np.ndarray, bits: int) -> Window:
    """8-bit grey is shown as stored (the identity window); deeper images need a window fitted to their values."""
    if bits == 8:
        return Window(center=127.5, width=255.0, function="LINEAR_EXACT", source="auto")
    return auto_window(values)


def _values(img: Image.Image) -> tuple[np.ndarray, int]:
    """Values as float32; RGB images whose channels are equal count as greyscale."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float32)
        return values, 32 if img.mode in ("I", "F") and float(values.max(initial=0)) > 65535 else 16
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB") if img.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA", "PA", "RGBX") else img.convert("L")
    if img.mode == "RGB":
        rgb = np.asarray(img)
        if is_grey_rgb(rgb):
            return np.asarray(img.convert("L"), dtype=np.float32), 8
        return rgb.astype(np.float32), 8
    return np.asarray(img, dtype=np.float32), 8
