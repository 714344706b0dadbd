"""Display windows: how physical values (HU for CT) become the 8-bit grey levels a person or a model sees.

The presets are the conventional radiology windows; a window stored in the DICOM file, one chosen from the
question, or one given by the user (`--window lung`, `--window 40,400`) all end up as a `Window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from vesalius.vision.errors import StudyError
from vesalius.vision.window_presets import PRESETS


class Window(BaseModel):
    """A VOI window: values within [center - width/2, center + width/2] spread over the grey scale."""

    center: float
    width: float
    function: Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"] = "LINEAR"
    source: Literal["dicom", "dicom-lut", "auto", "preset", "user"]
    name: str | None = None  # preset name, or the file's own explanation ("BONE", "WINDOW1")

    def label(self) -> str:
        text = f"C{self.center:g}/W{self.width:g}"
        if self.function != "LINEAR":
            text += f" {self.function.lower()}"
        return f"{self.name} {text}" if self.name else text


AUTO = "auto"  # MR, X-ray and anything without physical units: a percentile window of the image itself


def preset(name: str) -> Window:
    key = name.strip().lower()
    if key not in PRESETS:
        raise StudyError(
            f"unknown window preset {name!r}",
            f"Use one of {', '.join(sorted(PRESETS))}, 'auto', or a center,width pair such as 40,400",
        )
    center, width = PRESETS[key]
    return Window(center=center, width=width, source="preset", name=key)


def parse_window(text: str) -> Window | None:
    """A user's window: a preset name, "auto" (None: choose from the image) or "center,width"."""
    text = text.strip()
    if text.lower() == AUTO:
        return None
    if "," not in text:
        return preset(text)
    try:
        center, width = (float(part) for part in text.split(","))
    except ValueError:
        raise StudyError(
            f"cannot read the window {text!r}", "Write it as center,width (for example 40,400) or a preset name"
        ) from None
    if not np.isfinite(center):
        raise StudyError(f"window center must be a finite number, not {center:g}", "For example 40,400")
    if not np.isfinite(width) or width <= 0:
        raise StudyError(f"window width must be a positive number, not {width:g}", "For example 40,400")
    return Window(center=center, width=width, source="user")


def auto_window(values: np.ndarray) -> Window:
    """The 0.5-99.5 percentile range, estimated on a strided sample of at most 65,536 values: an exact percentile
    of a volume costs more than decoding it, and a display window does not need one."""
    flat = values.reshape(-1)
    step = max(1, -(-flat.size // 65_536))
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return Window(center=0.0, width=1.0, source="auto")
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    return Window(center=round((lo + hi) / 2, 1), width=round(hi - lo, 1), source="auto")


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT Sequence table (PS3.3 C.11.2.1.1): a non-linear display curve the modality chose."""

    first_mapped: int
    table: np.ndarray  # uint16
    bits: int

    def apply(self, values: np.ndarray) -> np.ndarray:
        index = np.clip(np.rint(values) - self.first_mapped, 0, len(self.table) - 1).astype(np.intp)
        return (self.table[index].astype(np.float32) * (255.0 / (2**self.bits - 1))).astype(np.uint8)

    def as_window(self) -> Window:
        """The linear window spanning the table's input range, for summaries (the rendering uses the table)."""
        width = float(max(len(self.table), 2))
        return Window(center=self.first_mapped + width / 2, width=width, source="dicom-lut")


def to_grey(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply `window` to `values` (PS3.3 C.11.2.1.2 and C.11.2.1.3), giving uint8 in the same shape."""
    v = values.astype(np.float32, copy=False)
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (v - c) / max(w, 1e-6), -60.0, 60.0)))
        return out.astype(np.uint8)
    if window.function == "LINEAR":  # the standard's LINEAR function: center - 0.5 and width - 1
        c, w = c - 0.5, max(w - 1.0, 1e-6)
    out = (v - (c - w / 2)) * (255.0 / w)
    return np.clip(out, 0.0, 255.0, out=out).astype(np.uint8)


def to_uint8_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear stretch of [lo, hi] onto 0-255 (colour images)."""
    if lo == 0.0 and hi == 255.0:  # 8-bit colour: already on the scale
        return np.clip(values, 0.0, 255.0).astype(np.uint8)
    out = (values.astype(np.float32, copy=False) - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(out, 0.0, 255.0, out=out).astype(np.uint8)
