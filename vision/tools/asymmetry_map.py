"""Where does the left half of the image differ most from the mirrored right half?

A heuristic anomaly map, not a trained detector: many structures (heart, liver, stomach) are asymmetric by
nature, so regions it marks are places to look, with scores in robust standard deviations, never diagnoses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.study import Study
from vesalius.vision.tools.base import Region, ToolResult
from vesalius.vision.tools.overlay import write_overlay

_GRID = 16  # blocks per side: coarse enough to average out noise, fine enough to point somewhere useful
_THRESHOLD = 2.5  # robust z above which a block is reported
_MAX_REGIONS = 3


class AsymmetryMap:
    name = "asymmetry_map"
    description = "left-right asymmetry heatmap of a greyscale image, with the most asymmetric regions"
    applies_to = "greyscale images of paired-symmetric views, except frontal chest X-rays (chest_anomaly covers them)"
    answers = frozenset({"abnormality"})
    outputs = frozenset({"summary", "measurements", "regions", "heatmap"})

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        if kind.is_chest_xray:
            return "frontal chest X-ray: the trained chest_anomaly detector replaces this heuristic"
        if not kind.accepted:  # marked regions on a photograph or a blank page would read as findings
            return f"the study is {kind.described()}"
        if study.summary.colour:
            return "needs a greyscale image; colour images (photographs, pathology, Doppler) are not symmetric views"
        if study.summary.modality in ("US", "SM", "XC", "GM", "ECG"):
            return f"left-right symmetry means nothing for {study.summary.modality} images"
        if min(study.summary.rows, study.summary.columns) < 2 * _GRID:
            return "the image is too small to divide into blocks"
        return None

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        grey = np.asarray(study.image.convert("L"), dtype=np.float32)
        blocks = _block_means(grey)
        diff = blocks - blocks[:, ::-1]
        mad = float(np.median(np.abs(diff - np.median(diff)))) * 1.4826 or 1.0
        z = np.abs(diff) / mad
        h, w = grey.shape
        bh, bw = h / _GRID, w / _GRID
        regions = []
        for idx in np.argsort(z, axis=None)[::-1]:
            r, c = divmod(int(idx), _GRID)
            if z[r, c] < _THRESHOLD or len(regions) >= _MAX_REGIONS:
                break
            if c >= _GRID // 2:
                continue  # each asymmetric pair appears twice; report the side that is brighter or darker once
            side = "brighter on image left" if diff[r, c] > 0 else "brighter on image right"
            regions.append(
                Region(
                    x=int(c * bw),
                    y=int(r * bh),
                    width=int(bw),
                    height=int(bh),
                    score=round(float(z[r, c]), 2),
                    side=side,
                )
            )
        heatmap = _write_overlay(study, z, out_dir) if out_dir else None
        m = {"max_score": round(float(z.max()), 2), "mean_score": round(float(z.mean()), 2)}
        if regions:
            where = "; ".join(f"({r.x},{r.y}) {r.width}x{r.height} px, score {r.score:g}" for r in regions)
            summary = f"{len(regions)} region(s) differ from the mirrored side beyond {_THRESHOLD} robust SD: {where}"
        else:
            summary = f"No region differs from its mirror image beyond {_THRESHOLD} robust SD"
        return ToolResult(
            tool=self.name,
            applied=True,
            reason="greyscale image of a paired-symmetric view",
            summary=summary,
            measurements=m,
            regions=regions,
            heatmap_path=str(heatmap) if heatmap else None,
            caveats=[
                "heuristic left-right comparison, not a trained anomaly detector; scores are not probabilities",
                "normal anatomy (heart, liver, positioning) is asymmetric and is marked too",
            ],
        )


def _block_means(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    ys = np.linspace(0, h, _GRID + 1).astype(int)
    xs = np.linspace(0, w, _GRID + 1).astype(int)
    return np.array([[grey[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean() for j in range(_GRID)] for i in range(_GRID)])


def _write_overlay(study: Study, z: np.ndarray, out_dir: Path) -> Path:
    heat = z / max(float(z.max()), _THRESHOLD)
    return write_overlay(study.image, heat, out_dir / f"{study.summary.study_id}_asymmetry.png")
