"""PNG, JPEG and TIFF studies: no tags, so the modality is whatever the user says (or unknown).

Only pixels are read: text chunks, EXIF and TIFF tags (which may name a patient) are never looked at.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vision.errors import StudyError
from vision.options import IngestOptions
from vision.study import FrameSource, Study, StudySummary
from vision.windows import Window, auto_window

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}


def read_image(path: Path, data: bytes, study_id: str, options: IngestOptions) -> Study:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF and the like: noise to a user
            values, bits, fmt, pages = _read(path, data, options)
    except Image.DecompressionBombError as exc:
        raise StudyError(f"{path.name} declares an image too large to open ({exc})", "Downscale it first") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise StudyError(f"{path.name} is a damaged or truncated image ({exc})", "Export the image again") from exc
    colour = values.ndim == 3
    summary = StudySummary(
        study_id=study_id,
        source_format=fmt,
        modality=(options.modality or "OT").upper(),
        modality_source="user" if options.modality else "assumed",
        rows=values.shape[0],
        columns=values.shape[1],
        colour=colour,
        bits_stored=bits,
        window=None if colour else _window(values, bits),
    )
    notes = (f"{path.name} has {pages} pages: the first is shown",) if pages > 1 else ()
    return Study(
        path=path,
        summary=summary,
        volume=values[None],
        sources=(FrameSource(path.name),),
        warnings=notes,
        colour_max=255.0,
    )


def _read(path: Path, data: bytes, options: IngestOptions) -> tuple[np.ndarray, int, str, int]:
    with Image.open(io.BytesIO(data)) as img:
        if img.width * img.height > options.max_pixels_per_frame:
            raise StudyError(
                f"{path.name} is {img.width}x{img.height} pixels, over the {options.max_pixels_per_frame:,} limit",
                "Downscale the image before asking about it",
            )
        pages = getattr(img, "n_frames", 1)
        img.load()  # a multi-page TIFF: the first page is the image, the rest are usually thumbnails
        values, bits = _values(img)
        return values, bits, _FORMATS.get(img.format or "", "png"), pages


def _window(values: np.ndarray, bits: int) -> Window:
    """8-bit grey is shown as stored (the identity window); deeper images need a window fitted to their values."""
    if bits == 8:
        return Window(center=127.5, width=255.0, function="LINEAR_EXACT", source="auto")
    return auto_window(values)


GREY_SPREAD = 8.0  # mean |R-G| + |G-B| under which an RGB picture is greyscale in substance


def is_grey_rgb(rgb: np.ndarray) -> bool:
    """A radiograph saved as an RGB JPEG has channels a few levels apart (chroma noise, a coloured marker);
    a slide or a photograph differs by tens on average."""
    a = rgb.astype(np.int16)
    return float((np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])).mean()) < GREY_SPREAD


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
