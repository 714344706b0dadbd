"""PNG and JPEG studies: no tags, so the modality is whatever the user says (or unknown)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vision.errors import StudyError
from vision.study import Study, StudySummary

MAX_PIXELS = 100_000_000  # a decompression bomb guard well above any radiograph


def read_image(path: Path, data: bytes, study_id: str, *, modality: str | None) -> Study:
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise StudyError(
                    f"{path.name} is {img.width}x{img.height} pixels, over the {MAX_PIXELS:,} pixel limit",
                    "Downscale the image before asking about it",
                )
            img.load()
            fmt = "png" if img.format == "PNG" else "jpeg"
            values, image, bits = _normalise(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise StudyError(f"{path.name} is a damaged or truncated image ({exc})", "Export the image again") from exc
    colour = values.ndim == 3
    summary = StudySummary(
        study_id=study_id,
        source_format=fmt,
        modality=(modality or "OT").upper(),
        modality_source="dicom" if modality else "assumed",
        rows=image.height,
        columns=image.width,
        colour=colour,
        bits_stored=bits,
    )
    return Study(path=path, summary=summary, values=values, image=image)


def _normalise(img: Image.Image) -> tuple[np.ndarray, Image.Image, int]:
    """Values as float32 and an 8-bit rendering; RGB images whose channels are equal count as greyscale."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(img, dtype=np.float32)
        lo, hi = float(values.min()), float(values.max())
        scaled = np.zeros_like(values) if hi <= lo else (values - lo) * (255.0 / (hi - lo))
        return values, Image.fromarray(scaled.astype(np.uint8), "L"), 16
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB") if img.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA") else img.convert("L")
    if img.mode == "RGB":
        rgb = np.asarray(img)
        # JPEG chroma noise leaves "grey" RGB images a level or two apart per channel.
        if np.abs(rgb.astype(np.int16) - rgb[..., :1]).max() <= 2:
            img = img.convert("L")
        else:
            return rgb.astype(np.float32), img, 8
    return np.asarray(img, dtype=np.float32), img, 8
