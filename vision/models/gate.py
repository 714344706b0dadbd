"""What kind of study is this? Decides which trained models may run on it.

DICOM tags decide first: a CT, MR, ultrasound or slide is never sent to a chest X-ray model, and a radiograph whose
tags name another body part or a lateral view is not either. Where tags are silent (plain images, secondary
captures, radiographs without a body part) a small classifier trained on five kinds of image looks at the pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from vision.image_io import is_grey_rgb
from vision.models.classifier import CalibratedClassifier, shown

CHEST_XRAY = "chest_xray_frontal"
_TAG_KINDS = {"CT": "ct", "MR": "mri", "US": "ultrasound", "SM": "pathology", "GM": "pathology"}
_RADIOGRAPHS = ("CR", "DX", "DR", "RG", "OT", "SC")  # may be a chest film: the pixels must say
_LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
_CHEST_PARTS = ("CHEST", "THORAX", "LUNG", "PORT CHEST", "TORAX")
MIN_PROBABILITY = 0.8  # below it the image gate does not call a plain image a frontal chest film


def looks_coloured(image: Image.Image) -> bool:
    """Colour in substance, not in storage (the rule ingestion uses for plain images)."""
    if image.mode in ("L", "I", "I;16", "F", "1"):
        return False
    return not is_grey_rgb(np.asarray(image.convert("RGB").resize((64, 64))))


_NAMES = {
    CHEST_XRAY: "a frontal chest X-ray",
    "chest_xray_lateral": "a lateral chest X-ray",
    "other_xray": "a radiograph of another body part",
    "ct": "CT",
    "mri": "MRI",
    "ultrasound": "ultrasound",
    "pathology": "a pathology image",
    "uncertain": "of uncertain kind",
}


class StudyKind(BaseModel):
    kind: str = Field(description="chest_xray_frontal, ct, mri, ultrasound, pathology, or another kind")
    source: Literal["dicom_tags", "image_classifier"]
    probability: float | None = Field(None, description="the gate classifier's calibrated probability for `kind`")
    probabilities: dict[str, float] = Field(default_factory=dict)
    reason: str

    @property
    def is_chest_xray(self) -> bool:
        return self.kind == CHEST_XRAY

    def described(self) -> str:
        """'CT (DICOM Modality is CT)': what the study is and how the gate knows."""
        return f"{_NAMES.get(self.kind, self.kind)} ({self.reason})"


def kind_from_tags(*, modality: str, modality_source: str, body_part: str | None, view: str | None) -> StudyKind | None:
    """The kind DICOM tags (or the modality a user gave) settle without looking at pixels; None when they do not."""
    code = (modality or "OT").upper()
    if modality_source in ("dicom", "user") and code in _TAG_KINDS:
        who = "DICOM Modality" if modality_source == "dicom" else "the modality given"
        return StudyKind(kind=_TAG_KINDS[code], source="dicom_tags", reason=f"{who} is {code}")
    if modality_source in ("dicom", "user") and code not in _RADIOGRAPHS:
        return StudyKind(kind=f"other ({code})", source="dicom_tags", reason=f"DICOM Modality is {code}")
    part = (body_part or "").upper()
    if part and not any(p in part for p in _CHEST_PARTS):
        return StudyKind(kind="other_xray", source="dicom_tags", reason=f"Body Part Examined is {part}")
    if (view or "").upper() in _LATERAL_VIEWS:
        return StudyKind(kind="chest_xray_lateral", source="dicom_tags", reason=f"View Position is {view}")
    return None


class Gate:
    def __init__(self, card, net):
        self.model = CalibratedClassifier(card, net)

    def classify(self, image: Image.Image) -> dict[str, float]:
        p = self.model.probabilities([image])[0]
        return {label: round(float(q), 4) for label, q in zip(self.model.card.classes, p, strict=True)}

    def read(self, image: Image.Image) -> StudyKind:
        """The image gate: what the pixels look like, for studies whose tags do not decide (`kind_from_tags`)."""
        probs = self.classify(image)
        best = max(probs, key=probs.get)
        runner = max((k for k in probs if k != CHEST_XRAY), key=probs.get)
        kind, reason = best, f"image gate, probability {shown(probs[best])}"
        if best == CHEST_XRAY and looks_coloured(image):
            # Radiographs are greyscale; a colour picture that looks like one is a photo or a screenshot of one.
            kind, reason = runner, f"a colour image is not a radiograph; image gate {runner} {shown(probs[runner])}"
        elif best == CHEST_XRAY and probs[best] < MIN_PROBABILITY:
            kind = "uncertain"
            reason = f"image gate unsure: chest X-ray {shown(probs[best])}, {runner} {shown(probs[runner])}"
        return StudyKind(
            kind=kind,
            source="image_classifier",
            probability=probs.get(kind, probs[best]),
            probabilities=probs,
            reason=reason,
        )
