"""CT only: how much of the slice falls in each Hounsfield band (air, lung, fat, soft tissue/fluid, bone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.study import Study
from vesalius.vision.tools.base import ToolResult

# Conventional HU ranges; boundaries overlap in reality (partial volume), so these are coarse bands.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("air", -np.inf, -900.0),
    ("lung_or_gas", -900.0, -500.0),
    ("fat", -190.0, -30.0),
    ("fluid_or_soft_tissue", -30.0, 100.0),
    ("enhancing_or_dense_tissue", 100.0, 300.0),
    ("bone_or_calcification", 300.0, np.inf),
)


class CtAttenuation:
    name = "ct_attenuation"
    description = "fraction of the slice in each Hounsfield-unit band, and the body's median attenuation"
    applies_to = "CT images in Hounsfield units"
    answers = frozenset({"measurement"})
    outputs = frozenset({"summary", "measurements"})

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        if study.summary.modality != "CT":
            return f"needs a CT image; this study is {study.summary.modality}"
        if study.summary.physical_unit != "HU":
            return "the CT file has no rescale slope/intercept, so its values are not Hounsfield units"
        return None

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        hu = study.values
        body = hu > -500
        m: dict[str, float] = {}
        for name, lo, hi in BANDS:
            m[f"{name}_fraction"] = round(float(np.mean((hu >= lo) & (hu < hi))), 4)
        m["body_fraction"] = round(float(body.mean()), 4)
        m["body_median_hu"] = round(float(np.median(hu[body])), 1) if body.any() else float("nan")
        m["min_hu"], m["max_hu"] = round(float(hu.min()), 1), round(float(hu.max()), 1)
        top = sorted(((m[f"{n}_fraction"], n) for n, _, _ in BANDS), reverse=True)[:3]
        parts = ", ".join(f"{n.replace('_', ' ')} {f:.0%}" for f, n in top)
        summary = (
            f"Slice composition by attenuation: {parts}; median attenuation of the body {m['body_median_hu']:g} HU"
        )
        return ToolResult(
            tool=self.name,
            applied=True,
            reason="CT with Hounsfield units",
            summary=summary,
            measurements=m,
            caveats=["one slice only; band limits are conventional and overlap through partial-volume effects"],
        )
