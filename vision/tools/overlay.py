"""Heatmap overlays: red where a map is high, the anatomy untouched where it is low, so both stay readable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_overlay(base: Image.Image, heat: np.ndarray, path: Path) -> Path:
    """`heat` in [0, 1] at any size; it is stretched over `base` (the image as displayed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb_base = base.convert("RGB")
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8), "L")
    h = np.asarray(heat_img.resize(rgb_base.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    rgb = np.asarray(rgb_base, dtype=np.float32).copy()
    rgb[..., 0] = rgb[..., 0] * (1 - h) + 255 * h
    rgb[..., 1:] *= (1 - 0.6 * h)[..., None]
    # Written aside and renamed: two questions on the same study at once each leave a whole picture.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(rgb.astype(np.uint8), "RGB").save(handle, "PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
