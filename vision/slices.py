"""Which images of a stack to show for a question: the slices where the tissue asked about is.

A lung question looks at the slices with the most aerated lung, a bleed question at those with blood-density
tissue; without a focus (or without Hounsfield units to measure tissue by) the stack is sampled evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vesalius.vision.errors import StudyError
from vesalius.vision.study import Study

# Hounsfield bands of the tissue each focus looks for (aerated lung, cortical bone, grey/white matter, fresh blood,
# soft tissue of the abdomen and mediastinum).
FOCI: dict[str, tuple[float, float]] = {
    "lung": (-950.0, -500.0),
    "bone": (300.0, 2000.0),
    "brain": (15.0, 45.0),
    "blood": (50.0, 90.0),
    "soft tissue": (0.0, 80.0),
}


@dataclass(frozen=True)
class SliceChoice:
    indices: list[int]  # in stack order
    key: int  # the one image used when only one can be shown
    reason: str


def choose_slices(
    study: Study, *, count: int, focus: str | None = None, requested: list[int] | None = None
) -> SliceChoice:
    """Up to `count` images of `study`. `requested` holds 1-based numbers a user asked for by name."""
    total = len(study.volume)
    if requested:
        bad = [n for n in requested if not 1 <= n <= total]
        if bad:
            raise StudyError(
                f"image {bad[0]} does not exist: this study has {total}", f"Ask about a number from 1 to {total}"
            )
        picked = sorted({n - 1 for n in requested})[:count]
        return SliceChoice(picked, picked[0], f"image{'s' if len(picked) > 1 else ''} asked for")
    if total == 1:
        return SliceChoice([0], 0, "the only image")
    if focus in FOCI and study.summary.physical_unit == "HU" and not study.summary.colour:
        choice = _by_tissue(study, focus, count)
        if choice is not None:
            return choice
    picked = _spread(0, total - 1, count)
    key = study.index if study.index in picked else picked[len(picked) // 2]
    return SliceChoice(picked, key, "evenly spaced through the stack")


def _by_tissue(study: Study, focus: str, count: int) -> SliceChoice | None:
    lo, hi = FOCI[focus]
    sample = study.volume[:, ::4, ::4]  # a coarse grid is plenty to measure how much of a slice is one tissue
    share = ((sample >= lo) & (sample <= hi)).mean(axis=(1, 2))
    best = int(np.argmax(share))
    if share[best] < 0.01:
        return None
    # Spread the other picks over the run of slices where the tissue is substantial, not just around the peak.
    present = np.flatnonzero(share >= 0.3 * share[best])
    picked = sorted(set(_spread(int(present.min()), int(present.max()), count - 1)) | {best})
    while len(picked) > count:
        picked.remove(min((p for p in picked if p != best), key=lambda p: share[p]))
    return SliceChoice(picked, best, f"most {focus} tissue ({share[best]:.0%} of slice {best + 1}) and its extent")


def _spread(first: int, last: int, count: int) -> list[int]:
    if count <= 0:
        return []
    return sorted({round(i) for i in np.linspace(first, last, min(count, last - first + 1))})
