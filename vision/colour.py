"""Whether an RGB image is grey in substance: ingestion and the modality gate decide it the same way."""

from __future__ import annotations

import numpy as np

GREY_SPREAD = 8.0  # mean |R-G| + |G-B| under which an RGB picture is greyscale in substance


def is_grey_rgb(rgb: np.ndarray) -> bool:
    """A radiograph saved as an RGB JPEG has channels a few levels apart (chroma noise, a coloured marker);
    a slide or a photograph differs by tens on average."""
    a = rgb.astype(np.int16)
    return float((np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])).mean()) < GREY_SPREAD
