"""What kind of study is this? Decides which trained models may run on it.

Three steps, and a study must pass each before any trained model sees it:

1. **Pixel checks, for every study** (DICOM or not): an image smaller than the smallest training images (28 px), an
   image with almost no variation (blank, constant), or one whose pixels are uncorrelated noise is none of the
   kinds any model here knows, whatever its tags say.
2. **DICOM tags**: a CT, MR, ultrasound or slide is never sent to a chest X-ray model, and a radiograph whose tags
   name another body part or a lateral view is not either. Where a tag-decided kind is one a trained model reads
   (ultrasound), the image gate must not find the pixels unlike every kind it knows.
3. **The image gate**, where tags are silent (plain images, secondary captures, radiographs without a body part):
   a small classifier trained on five kinds of medical image and on `other` (photographs, text, patterns, noise,
   ...). It must name a kind with at least that kind's minimum probability (the card's
   `extra.min_probability`), or the study is `other` ("none of the kinds I know") or `uncertain`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from vesalius.vision.colour import is_grey_rgb
from vesalius.vision.models.probability import shown

CHEST_XRAY = "chest_xray_frontal"
OTHER = "other"  # the image gate's class for images of none of the kinds it knows
TRAINED_KINDS = frozenset({CHEST_XRAY, "ultrasound"})  # kinds some trained model here reads
_GREYSCALE_KINDS = (CHEST_XRAY, "ultrasound")  # every training image of these kinds is greyscale
_TAG_KINDS = {"CT": "ct", "MR": "mri", "US": "ultrasound", "SM": "pathology", "GM": "pathology"}
_RADIOGRAPHS = ("CR", "DX", "DR", "RG", "OT", "SC")  # may be a chest film: the pixels must say
_LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
_CHEST_PARTS = ("CHEST", "THORAX", "LUNG", "PORT CHEST", "TORAX")
MIN_PROBABILITY = 0.8  # below it the image gate does not accept a plain image as a kind a trained model reads
MIN_PROBABILITY_NO_MODEL = 0.5  # kinds no trained model reads (CT, MRI, pathology): a majority, for the words only
TAG_VETO_OTHER = 0.9  # a tag-decided study a trained model would read is refused at this P(other) or above
# Pixel checks (every study): the smallest training images are MedMNIST's 28 px thumbnails.
MIN_SIDE = 28
BLANK_SPREAD = 8.0  # grey levels (of 255) between the 0.5th and 99.5th percentile, any channel
NOISE_CORRELATION = 0.15  # neighbouring pixels less alike than this: noise, not a picture of anything
_SCREEN_SIDE = 256


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
    OTHER: "not an image of any kind the models know",
    "blank": "a blank image",
    "too_small": "an image too small to read",
    "noise": "noise, not a picture",
}


class StudyKind(BaseModel):
    kind: str = Field(
        description="chest_xray_frontal, ct, mri, ultrasound, pathology; other (none of the kinds the gate knows), "
        "uncertain, blank, too_small, noise; or a kind the tags name"
    )
    source: Literal["dicom_tags", "image_classifier", "pixel_checks"]
    probability: float | None = Field(None, description="the gate classifier's calibrated probability for `kind`")
    probabilities: dict[str, float] = Field(default_factory=dict)
    reason: str

    @property
    def is_chest_xray(self) -> bool:
        return self.kind == CHEST_XRAY

    @property
    def accepted(self) -> bool:
        """Whether the gate recognised the study as a kind (not other, uncertain, blank, too small or noise)."""
        return self.kind not in (OTHER, "uncertain", "blank", "too_small", "noise")

    def described(self) -> str:
        """'CT (DICOM Modality is CT)': what the study is and how the gate knows."""
        return f"{_NAMES.get(self.kind, self.kind)} ({self.reason})"


def pixel_measures(image: Image.Image) -> tuple[float, float]:
    """(spread, correlation) of an image shrunk to at most 256 px: the grey levels between its 0.5th and 99.5th
    percentile in its most varied channel, and how alike neighbouring pixels are (Pearson r, rows and columns)."""
    im = image if image.mode in ("L", "RGB") else image.convert("RGB" if looks_coloured(image) else "L")
    if max(im.size) > _SCREEN_SIDE:
        scale = _SCREEN_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX)
    a = np.asarray(im, dtype=np.float64)
    channels = a.reshape(a.shape[0], a.shape[1], -1)
    lo, hi = np.percentile(channels.reshape(-1, channels.shape[2]), [0.5, 99.5], axis=0)
    spread = float((hi - lo).max())
    grey = channels.mean(axis=2)
    pairs = [(grey[:, :-1], grey[:, 1:]), (grey[:-1], grey[1:])]
    rs = []
    for x, y in pairs:
        if x.size < 2:
            continue
        x, y = x - x.mean(), y - y.mean()
        denom = np.sqrt((x * x).sum() * (y * y).sum())
        if denom > 0:
            rs.append(float((x * y).sum() / denom))
    return spread, (float(np.mean(rs)) if rs else 1.0)


def screen(image: Image.Image) -> StudyKind | None:
    """Pixel checks every study passes before any model sees it, whatever its tags say; None when it passes."""
    w, h = image.size
    if min(w, h) < MIN_SIDE:
        return StudyKind(
            kind="too_small",
            source="pixel_checks",
            reason=f"the image is {w} x {h} pixels; no model here reads images under {MIN_SIDE} px",
        )
    spread, correlation = pixel_measures(image)
    if spread < BLANK_SPREAD:
        return StudyKind(
            kind="blank",
            source="pixel_checks",
            reason=f"the image has almost no variation (99% of it within {spread:.0f} grey levels): nothing to read",
        )
    if correlation < NOISE_CORRELATION:
        return StudyKind(
            kind="noise",
            source="pixel_checks",
            reason=f"neighbouring pixels are unrelated (correlation {correlation:.2f}): noise, not a picture",
        )
    return None


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


def min_probability_for(kind: str) -> float:
    """The default minimum probability the image gate needs to accept a plain image as `kind`."""
    return MIN_PROBABILITY if kind in TRAINED_KINDS else MIN_PROBABILITY_NO_MODEL


def _listed(probs: dict[str, float], skip: tuple[str, ...] = (), n: int = 2) -> str:
    ranked = [k for k in sorted(probs, key=probs.get, reverse=True) if k not in skip][:n]
    return ", ".join(f"{k} {shown(probs[k])}" for k in ranked)


def decide(probs: dict[str, float], *, coloured: bool, min_probability: dict[str, float]) -> tuple[str, str]:
    """The image gate's rule, from its calibrated probabilities: (kind, reason in words).

    The most probable class decides, with three exceptions: `other` means none of the kinds it knows; a colour
    picture is never a chest film or greyscale ultrasound (every training image of those is greyscale), so the next
    most probable kind is taken; and a kind below its minimum probability leaves the study `uncertain`.
    """
    best = max(probs, key=probs.get)
    kind, note = best, ""
    if coloured and best in _GREYSCALE_KINDS:
        kind = max((k for k in probs if k not in _GREYSCALE_KINDS), key=probs.get)
        note = f"a colour image is not {_NAMES[best]} (the gate's are all greyscale); "
    if kind == OTHER:
        return OTHER, (f"{note}the image gate does not recognise this image as any kind it knows ({_listed(probs)})")
    needed = min_probability.get(kind, min_probability_for(kind))
    if probs[kind] < needed:
        return "uncertain", (
            f"{note}the image gate is unsure: {kind} {shown(probs[kind])} (it needs {needed:.2f}), "
            f"then {_listed(probs, skip=(kind,))}"
        )
    return kind, f"{note}image gate, probability {shown(probs[kind])}"


class Gate:
    def __init__(self, card, net):
        from vesalius.vision.models.classifier import CalibratedClassifier  # torch: only when the gate runs

        self.model = CalibratedClassifier(card, net)
        classes = card.classes
        given = card.extra.get("min_probability", {})
        self.min_probability = {c: float(given.get(c, min_probability_for(c))) for c in classes if c != OTHER}
        self.veto_other = float(card.extra.get("tag_veto_other", TAG_VETO_OTHER))
        self.knows_other = OTHER in classes

    def classify(self, image: Image.Image) -> dict[str, float]:
        p = self.model.probabilities([image])[0]
        return {label: round(float(q), 4) for label, q in zip(self.model.card.classes, p, strict=True)}

    def read(self, image: Image.Image) -> StudyKind:
        """The image gate: what the pixels look like, for studies whose tags do not decide (`kind_from_tags`)."""
        probs = self.classify(image)
        kind, reason = decide(probs, coloured=looks_coloured(image), min_probability=self.min_probability)
        return StudyKind(
            kind=kind,
            source="image_classifier",
            probability=probs.get(kind, max(probs.values())),
            probabilities=probs,
            reason=reason,
        )

    def confirm(self, image: Image.Image, tagged: StudyKind) -> StudyKind:
        """A tag-decided study of a kind a trained model reads: refused when the image gate is nearly sure the
        pixels are none of the kinds it knows (tags can be wrong, and a blank or stray picture can carry any)."""
        if not self.knows_other:
            return tagged
        probs = self.classify(image)
        if probs[OTHER] >= self.veto_other and max(probs, key=probs.get) == OTHER:
            return StudyKind(
                kind=OTHER,
                source="image_classifier",
                probability=probs[OTHER],
                probabilities=probs,
                reason=f"{tagged.reason}, but the image gate does not recognise the pixels as any kind it knows "
                f"({_listed(probs)})",
            )
        return tagged.model_copy(update={"probabilities": probs, "probability": probs.get(tagged.kind)})
