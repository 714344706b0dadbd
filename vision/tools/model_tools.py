"""Vision tools backed by the project's trained models (vesalius.vision.models): calibrated classifiers and the chest
anomaly detector. Each runs only on the kind of study its model was trained on, as the gate decides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vesalius.vision.models.gate import CHEST_XRAY, StudyKind
from vesalius.vision.models.probability import shown
from vesalius.vision.models.store import ModelStore
from vesalius.vision.study import Study
from vesalius.vision.tools.base import AnomalyScore, ModelInfo, Region, ToolResult
from vesalius.vision.tools.overlay import write_overlay

if TYPE_CHECKING:
    from vesalius.vision.models.card import Card
    from vesalius.vision.models.classifier import Reading

_SIDE_NOTE = "on a standard frontal film the image left is the patient's right"


def model_info(card: Card, store: ModelStore) -> ModelInfo:
    m = card.metrics
    if card.kind == "anomaly":
        headline = f"AUROC {m['auroc_normal_vs_pneumonia']:.3f} normal vs pneumonia"
    else:
        headline = f"AUROC {m['auroc']:.3f}, ECE {m['ece_after']:.3f}, sensitivity {m['sensitivity']:.2f}, "
        headline += f"specificity {m['specificity']:.2f}"
        if worst := m.get("shift", {}).get("worst_over_shifts"):
            headline += (
                f" on in-distribution validation; on shifted copies of those films as low as AUROC "
                f"{worst['auroc']:.3f}, specificity {worst['specificity']:.2f}, with ECE up to {worst['ece']:.3f}"
            )
    return ModelInfo(
        name=card.name,
        version=card.version,
        validation=f"{headline} ({m['n']} validation images)",
        card=str(store.folder(card.name) / f"{card.name}.md"),
    )


def _not_chest(kind: StudyKind) -> str | None:
    if kind.is_chest_xray:
        return None
    return f"trained on frontal chest X-rays only; this study is {kind.described()}"


class _ClassifierTool:
    """A calibrated binary classifier from the model store, reported against its screening threshold."""

    answers = frozenset({"abnormality"})
    outputs = frozenset({"summary", "probabilities"})
    model_name = ""
    ran_because = ""

    def __init__(self, store: ModelStore):
        self.store = store

    def caveats(self, study: Study, card: Card) -> list[str]:
        return card.limitations[:2]

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        model = self.store.classifier(self.model_name)
        reading = model.read(study.image)
        [p] = reading.probabilities
        caveats = self.caveats(study, model.card)
        if unlike := _unlike_training(study, model.card, reading):
            p = p.model_copy(update={"in_training_range": False})
            summary = (
                f"probability of {p.label} {shown(p.probability)}, not to be relied on: {unlike}; not compared with "
                "the screening threshold"
            )
            caveats = [f"outside its training range: {unlike}, so its probability has no calibrated meaning here"]
            caveats += model.card.limitations[:1]
        else:
            side = "above" if p.above_threshold else "below"
            summary = (
                f"probability of {p.label} {shown(p.probability)} (calibrated; {side} the screening threshold "
                f"{p.threshold:.2f}, chosen for sensitivity >= 0.95)"
            )
        measurements = {} if reading.score is None else {"population_check_score": reading.score}
        return ToolResult(
            tool=self.name,
            applied=True,
            reason=self.ran_because,
            summary=summary,
            measurements=measurements,
            probabilities=[p],
            model=model_info(model.card, self.store),
            caveats=caveats,
        )


def _unlike_training(study: Study, card: Card, reading: Reading) -> str | None:
    """Why this study lies outside the population the model learnt from, if it does: the patient's recorded age,
    then the population check on the pixels."""
    ages, age = card.extra.get("training_ages_years"), study.summary.patient_age_years
    # Five years either side: a six-year-old's film is still a child's film, a teenager's is not.
    if isinstance(ages, list) and len(ages) == 2 and age is not None and not ages[0] - 5 <= age <= ages[1] + 5:
        return f"the patient is {age:g} years old and the model learnt from children aged {ages[0]}-{ages[1]}"
    if reading.score is not None and reading.limit is not None and reading.score > reading.limit:
        return (
            f"this film looks unlike the films the model was trained on (population check {reading.score:.1f}, "
            f"above the {reading.limit:.1f} that 99% of its validation films stay within)"
        )
    return None


class PneumoniaClassifier(_ClassifierTool):
    name = "pneumonia_classifier"
    description = "calibrated probability of pneumonia on a frontal chest X-ray"
    applies_to = f"frontal chest X-rays (gate kind {CHEST_XRAY})"
    model_name = "pneumonia"
    ran_because = "frontal chest X-ray"

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        return _not_chest(kind)


class ChestAnomaly:
    name = "chest_anomaly"
    description = "how unusual a frontal chest X-ray is compared with normal films, where, and a heatmap"
    applies_to = f"frontal chest X-rays (gate kind {CHEST_XRAY})"
    answers = frozenset({"abnormality"})
    outputs = frozenset({"summary", "anomaly", "regions", "heatmap"})

    def __init__(self, store: ModelStore):
        self.store = store

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        return _not_chest(kind)

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        detector = self.store.anomaly()
        image = study.image
        [patch_map] = detector.patch_maps([image])
        result, heat = detector.result(patch_map)
        w, h = image.size
        regions = [
            Region(
                x=round(r.x * w),
                y=round(r.y * h),
                width=max(1, round(r.width * w)),
                height=max(1, round(r.height * h)),
                score=r.peak,
                unit="x the normal patch limit",
                side=_side(r.x, r.width),
            )
            for r in result.regions
        ]
        heatmap = None
        if out_dir is not None:
            # 1 (the normal limit) maps to half intensity, twice the limit and beyond to full red.
            heatmap = write_overlay(
                image,
                (heat - 0.5) / 1.5,
                out_dir / f"{study.summary.study_id}_anomaly.png",
                [(r.x, r.y, r.width, r.height) for r in regions],
            )
        verdict = "unusual" if result.unusual else "within the range of normal films"
        caveats = ["unusual means unlike the normal training films, not diseased", _label_caveat(detector.card)]
        if unlike := self._unlike_training(study, detector.card):
            # An adult film is unusual next to children's films whatever it shows: say so before the score.
            verdict += ", but the film lies outside the films it learnt normal from, so this says little"
            caveats.insert(0, f"outside its training range: {unlike}")
        rank = (
            "every validation normal film"
            if result.normal_percentile >= 99.5
            else f"{result.normal_percentile:.0f}% of validation normal films"
        )
        summary = (
            f"anomaly score {result.score:.3f}, {verdict} (threshold {result.threshold:.3f}; higher than {rank}); "
            + (
                f"{len(regions)} region(s) beyond the normal patch limit"
                if regions
                else "no region beyond the normal patch limit"
            )
        )
        return ToolResult(
            tool=self.name,
            applied=True,
            reason="frontal chest X-ray",
            summary=summary,
            anomaly=AnomalyScore(**result.model_dump(exclude={"regions"})),
            regions=regions,
            heatmap_path=str(heatmap) if heatmap else None,
            model=model_info(detector.card, self.store),
            caveats=caveats,
        )

    def _unlike_training(self, study: Study, card: Card) -> str | None:
        """The population check of the network the detector reads features from, where it has one."""
        if not card.backbone:
            return None
        backbone = self.store.classifier(card.backbone)
        return _unlike_training(study, backbone.card, backbone.read(study.image))


def _side(x: float, width: float) -> str:
    """Where a region lies across the film, as displayed."""
    if width > 0.5:
        return "spans both sides of the image"
    centre = x + width / 2
    where = "left" if centre < 0.4 else "right" if centre > 0.6 else "middle"
    return f"image {where}" + ("" if where == "middle" else f" ({_SIDE_NOTE})")


def _label_caveat(card: Card) -> str:
    free = card.metrics.get("auroc_with_label_free_backbone")
    text = (
        f"its features come from the {card.backbone} classifier, trained with disease labels; the normal memory and "
        "the thresholds use normal films only"
    )
    return text + (f" (without disease labels the same detector reaches AUROC {free:.3f})" if free else "")


class BreastUltrasoundClassifier(_ClassifierTool):
    name = "breast_ultrasound_classifier"
    description = "calibrated probability that a breast ultrasound image shows a malignant lesion (28 px model)"
    applies_to = "breast ultrasound (DICOM US with Body Part BREAST, or a plain image the gate reads as ultrasound)"
    model_name = "breastmnist"
    ran_because = "ultrasound image"

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        if kind.kind != "ultrasound":
            return f"trained on breast ultrasound only; this study is {kind.described()}"
        part = (study.summary.body_part or "").upper()
        if kind.source == "dicom_tags" and "BREAST" not in part:
            return f"trained on breast ultrasound only; Body Part Examined is {part or 'not recorded'}"
        return None

    def caveats(self, study: Study, card: Card) -> list[str]:
        assumed = [] if study.summary.body_part else ["body part not recorded: assumed breast, as in all its training"]
        return [*assumed, *card.limitations]
