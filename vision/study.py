"""The `Study` handed to everything downstream of ingestion, whatever it was read from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel

from vesalius.vision import coded
from vesalius.vision.deid_record import DeidRecord
from vesalius.vision.errors import StudyError
from vesalius.vision.windows import VoiLut, Window, to_grey, to_uint8_range


class StudySummary(BaseModel):
    """What the rest of the system may know about a study: no names, dates, ids or free-text patient fields.

    Only these allow-listed attributes are read, from a dataset already de-identified, so nothing identifying
    reaches a log, a cache, the conversation store or a model server through the summary.
    """

    study_id: str  # content hash of the source, not a DICOM UID
    source_format: Literal["dicom", "png", "jpeg", "tiff"]
    source_kind: Literal["file", "folder", "zip", "dicomdir"] = "file"
    modality: str  # DICOM modality code (CT, MR, CR, DX, US, ...) or "OT" when unknown
    modality_source: Literal["dicom", "user", "assumed"]
    body_part: str | None = None
    view: str | None = None
    laterality: str | None = None
    patient_age_years: float | None = None
    patient_sex: Literal["F", "M", "O"] | None = None
    rows: int
    columns: int
    stack: Literal["single", "volume", "cine"] = "single"
    frames: int = 1  # images held: slices of a volume, or the representative frames of a cine
    source_frames: int = 1  # frames or slices in the source
    frame_shown: int = 0
    colour: bool = False
    bits_stored: int = 8
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_spacing_mm: float | None = None
    physical_unit: str | None = None  # "HU" for CT after the modality LUT
    window: Window | None = None
    stored_windows: list[Window] = []
    transfer_syntax: str | None = None
    burned_in_annotation: Literal["NO", "YES", "unknown"] | None = None

    def one_line(self) -> str:
        modality = {"dicom": self.modality, "user": f"{self.modality} (as given)"}.get(
            self.modality_source, f"{self.modality} (assumed: no DICOM tags)"
        )
        parts = [modality, f"body part: {self.body_part or 'not recorded'}", f"view: {self.view or 'not recorded'}"]
        if self.patient_age_years is not None or self.patient_sex:
            age = f"{self.patient_age_years:g} y" if self.patient_age_years is not None else "age not recorded"
            parts.append(f"{age}, sex {self.patient_sex or 'not recorded'}")
        size = f"{self.columns}x{self.rows} px"
        if self.stack == "volume":
            size += f", slice {self.frame_shown + 1} of {self.frames}"
        elif self.stack == "cine":
            size += f", {self.frames} of {self.source_frames} frames kept, showing {self.frame_shown + 1}"
        parts.append(size)
        if self.pixel_spacing_mm:
            spacing = f"{self.pixel_spacing_mm[0]:.2f}x{self.pixel_spacing_mm[1]:.2f}"
            if self.slice_spacing_mm:
                spacing += f"x{self.slice_spacing_mm:.2f}"
            parts.append(f"{spacing} mm")
        parts.append(f"{'colour' if self.colour else 'greyscale'} {self.bits_stored}-bit {self.source_format.upper()}")
        if self.window:
            parts.append(f"window {self.window.label()} ({self.window.source})")
        return " · ".join(parts)


@dataclass(frozen=True)
class DicomRef:
    """The de-identified UIDs of a DICOM image (replaced by keyed HMAC at ingestion): what a report written about
    the image may cite, matching the de-identified copy, never the source's own UIDs."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str

    @classmethod
    def of(cls, ds: object) -> DicomRef | None:
        """From a de-identified dataset; None when one of the four is missing or not a valid UID."""
        keywords = ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID")
        values = [coded.uid(getattr(ds, k, None), k, []) for k in keywords]
        return cls(*values) if all(values) else None  # type: ignore[arg-type]


@dataclass(frozen=True)
class FrameSource:
    """Where one image of the study came from: a file (relative to what the user opened) and its frame."""

    file: str
    frame: int | None = None  # None: a single-frame file
    dicom: DicomRef | None = None  # DICOM images only

    def label(self) -> str:
        return self.file if self.frame is None else f"{self.file} frame {self.frame + 1}"


@dataclass(frozen=True)
class Study:
    """A loaded study: every image in physical units, how to display them, and where each came from.

    `volume` is float32, (N, H, W) for grey or (N, H, W, 3) for colour; N = 1 for a single image. `index` is the
    image in focus, `window` its display window; `focused()` moves either without copying the volume.
    """

    path: Path
    summary: StudySummary
    volume: np.ndarray = field(repr=False)
    sources: tuple[FrameSource, ...] = ()
    deid: DeidRecord | None = None
    warnings: tuple[str, ...] = ()
    invert: bool = False  # MONOCHROME1: low values are shown white
    voi_lut: VoiLut | None = field(default=None, repr=False)  # the file's own display curve (window "dicom-lut")
    colour_max: float = 255.0
    # When the source held several series: (SeriesNumber, description) of each, the one shown first.
    series_choices: tuple[tuple[int | None, str], ...] = ()

    @property
    def index(self) -> int:
        return self.summary.frame_shown

    @property
    def values(self) -> np.ndarray:
        """The image in focus, in physical units."""
        return self.volume[self.index]

    @cached_property
    def image(self) -> Image.Image:
        """The image in focus, rendered as a person would see it."""
        return self.render()

    def render(self, index: int | None = None, max_side: int | None = None) -> Image.Image:
        """Image `index` (default: the one in focus) in 8 bits, shrunk (never enlarged) to `max_side`."""
        values = self.volume[self.index if index is None else index]
        if self.summary.colour:
            img = Image.fromarray(to_uint8_range(values, 0.0, self.colour_max), "RGB")
        else:
            window = self.summary.window or Window(center=127.5, width=256, source="auto")
            if window.source == "dicom-lut" and self.voi_lut is not None:
                grey = self.voi_lut.apply(values)
            else:
                grey = to_grey(values, window)
            img = Image.fromarray(255 - grey if self.invert else grey, "L")
        if max_side is None or max(img.size) <= max_side:
            return img
        scale = max_side / max(img.size)
        return img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS
        )

    def focused(self, index: int | None = None, window: Window | None = None) -> Study:
        """The same study looking at image `index` through `window` (grey images only take a window)."""
        changes: dict[str, object] = {}
        if index is not None:
            if not 0 <= index < len(self.volume):
                raise StudyError(
                    f"image {index + 1} does not exist: this study has {len(self.volume)}",
                    f"Choose a number from 1 to {len(self.volume)}",
                )
            changes["frame_shown"] = index
        if window is not None and not self.summary.colour:
            changes["window"] = window
        if not changes:
            return self
        return dataclasses.replace(self, summary=self.summary.model_copy(update=changes))
