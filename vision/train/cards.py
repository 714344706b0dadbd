"""The words of each model card: licence, intended use and known limitations, and the card as Markdown."""

from __future__ import annotations

import json
from pathlib import Path

from vesalius.vision.models.card import Card

_KERMANY = "Kermany et al., Cell 2018, data CC BY 4.0 (attribute the authors)"
_MEDMNIST = "MedMNIST v2, Yang et al., Sci Data 2023, CC BY 4.0"
LICENCES = {
    "pneumonia": f"weights Apache-2.0 (this project); training data {_KERMANY}",
    "chest_anomaly": f"weights Apache-2.0 (this project); training data {_KERMANY}",
    "pneumoniamnist": f"weights Apache-2.0 (this project); training data {_MEDMNIST} (derived from Kermany et al.)",
    "breastmnist": f"weights Apache-2.0 (this project); training data {_MEDMNIST} (from Al-Dhabyani et al., 2020)",
    "modality_gate": "weights Apache-2.0 (this project); training data Kermany (CC BY 4.0), VQA-RAD (CC0), "
    "BreastMNIST (CC BY 4.0), PathVQA images (MIT as published; underlying figures of unclear copyright)",
}

_PAEDIATRIC = (
    "trained on paediatric chest X-rays (children aged 1-5 from one centre in Guangzhou); adults, other hospitals "
    "and other devices are outside its training data and its numbers there are unknown"
)
_JPEG = "trained on 224 px re-encoded JPEGs: fine detail a full-resolution film shows is invisible to it"
_VALIDATION = (
    "metrics are from a validation split of the public training set; the official test split differs "
    "(another time period) and published models lose several points of specificity on it"
)

_TEXT = {
    "pneumonia": (
        (
            "Decision support for clinicians reading frontal chest X-rays: a calibrated probability that the film shows "
            "pneumonia (bacterial or viral), to be weighed with the clinical picture. Not a diagnosis; not for triage "
            "without a clinician."
        ),
        [
            _PAEDIATRIC,
            (
                "a population check calls a film outside its training range when the patient's recorded age is more "
                "than five years outside 1-5, or when the film's features look like an adult's (fitted against "
                "VQA-RAD's adult films); its probability then raises no alarm and answers no question. Other "
                "populations the check never saw (another hospital's children, another device) can pass it unnoticed"
            ),
            _JPEG,
            _VALIDATION,
            (
                "two classes only: other abnormalities (effusion, pneumothorax, masses, devices) are not recognised and may "
                "give any probability"
            ),
            "runs only on studies the modality gate reads as frontal chest X-rays",
        ],
    ),
    "chest_anomaly": (
        (
            "Shows where a frontal chest X-ray differs from the normal films it has seen, with a heatmap, to direct a "
            "reader's attention. A high score means 'unlike the normal training films', not 'diseased'."
        ),
        [
            _PAEDIATRIC,
            _JPEG,
            _VALIDATION,
            (
                "its backbone is the pneumonia classifier, trained with pneumonia labels: the memory and thresholds use "
                "normal images only, but the features were shaped by the labels, so unusual findings other than pneumonia "
                "may score lower than pneumonia does; over the modality gate's network, which saw no disease label, "
                "the same detector scores the AUROC in metrics.auroc_with_label_free_backbone"
            ),
            "positioning, rotation, devices and text markers also make a film unusual and are marked",
            "regions are 16 px patches of the 224 px input, smoothed: they point to an area, they do not outline a lesion",
        ],
    ),
    "pneumoniamnist": (
        (
            "Benchmark model for the MedMNIST PneumoniaMNIST task (28 px thumbnails); shipped for comparison with published "
            "MedMNIST numbers, not used by the agent by default."
        ),
        [
            _PAEDIATRIC,
            "28 px input: only gross opacity is visible",
            _VALIDATION.replace("public training set", "MedMNIST train/val"),
        ],
    ),
    "breastmnist": (
        (
            "Benchmark model for the MedMNIST BreastMNIST task: probability that a breast ultrasound image shows a "
            "malignant lesion. The agent runs it only on studies identified as breast ultrasound."
        ),
        [
            (
                "28 px thumbnails of 600 images from one Egyptian centre (Al-Dhabyani et al.); tiny validation set (78 "
                "images), so every metric has a wide interval"
            ),
            "expects a cropped breast ultrasound image; a whole-screen capture with annotations is out of distribution",
        ],
    ),
    "modality_gate": (
        (
            "Decides what kind of image a study is (frontal chest X-ray, CT, MRI, ultrasound, pathology) or that it is "
            "none of these (`other`: a photograph, a page of text, a pattern, noise), so that models trained on one "
            "kind never run on another or on a picture of nothing they know. Pixel checks (too small, blank, noise) "
            "come first for every study; DICOM tags then decide CT, MR, ultrasound and slides; the network reads the "
            "rest, and must not call a tag-decided ultrasound `other` with probability >= extra.tag_veto_other."
        ),
        [
            (
                "`other` was learnt from generated images (fields, gradients, noise, shapes, patterns, rendered text) "
                "and scikit-image's bundled photographs and textures: a kind of picture unlike all of them can still "
                "be read as a medical kind; metrics.ood_per_family gives the rejection on held-out families, some "
                "never seen in training"
            ),
            (
                "no radiograph of another body part and no lateral chest film is among its images (VQA-RAD has "
                "none): DICOM tags (Body Part Examined, View Position) catch these, but a plain PNG of a hand or knee "
                "film is read by the pixels alone and may be taken for a chest X-ray"
            ),
            (
                "ultrasound examples are 28 px BreastMNIST thumbnails upscaled, and CT/MRI come from 208 VQA-RAD "
                "images: real-world variety is wider, and a full-resolution ultrasound screen capture given as a plain "
                "image may be read as `other` or left uncertain (no model runs then)"
            ),
            (
                "the kinds a trained model reads (chest X-ray, ultrasound) need probability 0.8 and the others 0.5 "
                "(extra.min_probability); below it the study is `uncertain` and no trained model runs; a colour "
                "picture is never taken for a chest film or a greyscale ultrasound"
            ),
            (
                "pathology is where unknown pictures most often land: colour photographs, scanned pages and fundus "
                "images are sometimes named 'a pathology image' (no trained model reads pathology, so the cost is "
                "the words, not a result); see metrics.ood_per_family.not_a_known_kind"
            ),
        ],
    ),
}


def describe(name: str) -> dict:
    intended, limitations = _TEXT[name]
    return {"intended_use": intended, "limitations": limitations}


def markdown(card: Card) -> str:
    lines = [
        f"# Model card: {card.name} {card.version}",
        "",
        f"**Task.** {card.task}.",
        "",
        f"**Intended use.** {card.intended_use}",
        "",
        "## Data and licence",
        f"- Data: {card.data}",
        f"- Licence: {card.licence}",
        f"- Split: {card.metrics_split}",
        "",
        "## Training recipe",
        *(f"- {k}: {v}" for k, v in card.recipe.items()),
        "",
        "## Calibration and operating point",
        f"- Calibration: {card.calibration.method}"
        + (f" (T = {card.calibration.temperature:.3f})" if card.calibration.method == "temperature" else "")
        + (
            f" (a = {card.calibration.platt_a:.3f}, b = {card.calibration.platt_b:.3f})"
            if card.calibration.method == "platt"
            else ""
        ),
        f"- Threshold: {card.threshold} ({card.operating_point})",
        "",
        "## Metrics (validation)",
        "```json",
        json.dumps(card.metrics, indent=2),
        "```",
        "",
        *(f"![{p}](plots/{p})" for p in card.plots),
        "",
        *_shift_section(card),
        "## Known limitations",
        *(f"- {item}" for item in card.limitations),
        "",
        f"Reproduce: `vesalius train {card.name}` (fixed seed {card.recipe.get('seed', 0)}; reads ../shared/data).",
        "",
    ]
    return "\n".join(lines)


def _shift_section(card: Card) -> list[str]:
    if "shift" not in card.metrics:
        return []
    from vesalius.vision.train.shift import table

    lines = [
        "## In distribution and under acquisition shift",
        (
            "The validation films come from the training distribution, so the in-distribution numbers are optimistic: "
            "an independent measurement of an earlier version on Kermany's official test split found AUROC 0.961 "
            "against 0.998 on validation, and none of the copies below reproduces that fall. The same films, changed "
            "as another device, site or export changes a film; calibration and threshold are fitted on one fold's "
            "films and their copies and measured on the other's. The last column is the share the population check "
            "calls unlike the training films:"
        ),
        "",
        table(card.metrics["shift"]),
        "",
    ]
    if adults := card.metrics.get("adult_chest_films"):
        lines += [
            "## Adult chest films (a population it never saw)",
            (
                f"VQA-RAD's {adults['n']} adult frontal chest films, which carry no pneumonia labels: without the "
                f"population check, {adults['above_threshold_without_check']:.0%} would have been called above the "
                f"screening threshold. The check (each film judged by a check fitted without it, five folds) calls "
                f"{adults['outside_training_range']:.0%} of them unlike the training films; "
                f"{adults['alarms_with_check']:.0%} still raise an alarm."
            ),
            "",
        ]
    return lines


def write_markdown(card: Card, out: Path) -> Path:
    path = out / f"{card.name}.md"
    path.write_text(markdown(card))
    return path
