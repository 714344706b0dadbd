"""Heatmap overlays: red where a map is high, the anatomy untouched where it is low, so both stay readable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_overlay(base: Image.Image, heat: np.ndarray, path: Path, boxes: list[tuple[int, int, int, int]] = ()) -> Path:
    """`heat` in [0, 1] at any size; it is stretched over `base` (the image as displayed). `boxes` (x, y, width,
    height in pixels of `base`) are outlined: the regions an answer names, where a reader should look."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb_base = base.convert("RGB")
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8), "L")
    h = np.asarray(heat_img.resize(rgb_base.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    rgb = np.asarray(rgb_base, dtype=np.float32).copy()
    rgb[..., 0] = rgb[..., 0] * (1 - h) + 255 * h
    rgb[..., 1:] *= (1 - 0.6 * h)[..., None]
    picture = Image.fromarray(rgb.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    line = max(1, round(min(picture.size) / 150))
    for x, y, w, hh in boxes:
        draw.rectangle((x, y, x + w - 1, y + hh - 1), outline=(255, 220, 0), width=line)
    # Written aside and renamed: two questions on the same study at once each leave a whole picture.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as handle:
            picture.save(handle, "PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
