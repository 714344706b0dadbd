"""Is the image usable? Contrast, clipping and noise, measured on the 8-bit rendering a person sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.study import Study
from vesalius.vision.tools.base import ToolResult


class ImageQuality:
    name = "image_quality"
    description = "contrast, clipping and noise of the displayed image"
    applies_to = "every image"
    answers = frozenset({"quality"})
    outputs = frozenset({"summary", "measurements"})

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        return None

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        grey = np.asarray(study.image.convert("L"), dtype=np.float32)
        p1, p99 = np.percentile(grey, [1, 99])
        clipped = float(np.mean((grey <= 0) | (grey >= 255)))
        # Noise from the median absolute Laplacian: flat regions dominate the median, so edges barely bias it.
        lap = grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
        noise = float(np.median(np.abs(lap)) / 0.6745 / np.sqrt(20)) if lap.size else 0.0
        m = {
            "contrast_std": round(float(grey.std()), 2),
            "used_range_fraction": round(float((p99 - p1) / 255.0), 3),
            "clipped_fraction": round(clipped, 4),
            "noise_sigma": round(noise, 2),
        }
        problems = []
        if m["used_range_fraction"] < 0.25:
            problems.append("low contrast (the image uses under a quarter of the grey range)")
        if clipped > 0.25:
            problems.append(f"{clipped:.0%} of pixels are clipped to black or white")
        if min(study.summary.rows, study.summary.columns) < 128:
            problems.append(f"low resolution ({study.summary.columns}x{study.summary.rows} px)")
        summary = (
            "Image quality adequate for viewing" if not problems else "Image quality limited: " + "; ".join(problems)
        )
        return ToolResult(
            tool=self.name,
            applied=True,
            reason="applies to every image",
            summary=summary,
            measurements=m,
            caveats=["measured on the displayed 8-bit image, not on diagnostic quality criteria"],
        )
