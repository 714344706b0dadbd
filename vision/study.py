"""The `Study` handed to everything downstream of ingestion."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel


class Window(BaseModel):
    """The display window that mapped physical values to 8 bits."""

    center: float
    width: float
    source: Literal["dicom", "auto", "preset"]


class StudySummary(BaseModel):
    """What the rest of the system may know about a study: no names, dates, ids or free-text patient fields.

    Only these allow-listed, non-identifying attributes are read from DICOM, so nothing identifying can reach a
    log, a cache, the conversation store or a model server through the summary.
    """

    study_id: str  # content hash of the file, not a DICOM UID
    source_format: Literal["dicom", "png", "jpeg"]
    modality: str  # DICOM modality code (CT, MR, CR, DX, US, ...) or "OT" when unknown
    modality_source: Literal["dicom", "assumed"]
    body_part: str | None = None
    view: str | None = None
    laterality: str | None = None
    rows: int
    columns: int
    frames: int = 1
    frame_shown: int = 0
    colour: bool = False
    bits_stored: int = 8
    pixel_spacing_mm: tuple[float, float] | None = None
    physical_unit: str | None = None  # "HU" for CT after the modality LUT
    window: Window | None = None

    def one_line(self) -> str:
        parts = [self.modality if self.modality_source == "dicom" else f"{self.modality} (assumed: no DICOM tags)"]
        parts.append(f"body part: {self.body_part or 'not recorded'}")
        parts.append(f"view: {self.view or 'not recorded'}")
        size = f"{self.columns}x{self.rows} px"
        if self.frames > 1:
            size += f", frame {self.frame_shown + 1} of {self.frames}"
        parts.append(size)
        if self.pixel_spacing_mm:
            parts.append(f"{self.pixel_spacing_mm[0]:.2f}x{self.pixel_spacing_mm[1]:.2f} mm pixels")
        parts.append(f"{'colour' if self.colour else 'greyscale'} {self.bits_stored}-bit {self.source_format.upper()}")
        if self.window:
            parts.append(f"window C{self.window.center:g}/W{self.window.width:g} ({self.window.source})")
        return " · ".join(parts)


@dataclass(frozen=True)
class Study:
    """A loaded study: its summary, the values of the frame shown (physical units where they exist) and its rendering."""

    path: Path
    summary: StudySummary
    values: np.ndarray = field(repr=False)  # float32, HxW (grey) or HxWx3 (colour)
    image: Image.Image = field(repr=False)  # 8-bit "L" or "RGB", as a person would see it

    def rendered(self, max_side: int | None = None) -> Image.Image:
        """The 8-bit image, shrunk (never enlarged) so that its longer side is at most `max_side`."""
        if max_side is None or max(self.image.size) <= max_side:
            return self.image
        scale = max_side / max(self.image.size)
        size = (max(1, round(self.image.width * scale)), max(1, round(self.image.height * scale)))
        return self.image.resize(size, Image.Resampling.LANCZOS)
