"""What `vesalius train MODEL` does for each shipped model: data, recipe, validation, card, bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.card import WEIGHTS_DIR, Card, save_bundle
from vesalius.vision.models.classifier import calibrate
from vesalius.vision.models.net import CompactResNet, NetConfig
from vesalius.vision.train import datasets
from vesalius.vision.train.anomaly_fit import fit_anomaly
from vesalius.vision.train.cards import LICENCES, describe, write_markdown
from vesalius.vision.train.evaluate import binary_report
from vesalius.vision.train.gate_eval import gate_report
from vesalius.vision.train.trainer import Recipe, predict_logits, train_classifier

VERSION = "1.0"


@dataclass(frozen=True)
class ClassifierSpec:
    load: Callable[[Path, int], datasets.Dataset]
    recipe: Recipe
    task: str
    title: str


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "pneumonia": ClassifierSpec(
        load=lambda data, seed: datasets.kermany(data, seed=seed),
        recipe=Recipe(NetConfig(width=32, classes=1, input_size=224), epochs=12),
        task="pneumonia vs normal on a frontal paediatric chest X-ray",
        title="Pneumonia (Kermany CXR, validation by patient)",
    ),
    "pneumoniamnist": ClassifierSpec(
        load=lambda data, seed: datasets.medmnist(data, "pneumoniamnist", positive=1),
        recipe=Recipe(NetConfig(width=32, classes=1, input_size=28, stages=3), epochs=30, augment=0.0, lr=2e-3),
        task="pneumonia vs normal on a 28 px chest X-ray thumbnail (MedMNIST benchmark task)",
        title="PneumoniaMNIST (official val)",
    ),
    "breastmnist": ClassifierSpec(
        load=lambda data, seed: datasets.medmnist(data, "breastmnist", positive=0),
        recipe=Recipe(NetConfig(width=32, classes=1, input_size=28, stages=3), epochs=60, augment=0.0, lr=2e-3),
        task="malignant vs normal-or-benign on a 28 px breast ultrasound thumbnail (MedMNIST benchmark task)",
        title="BreastMNIST (official val)",
    ),
}
MODELS = (*CLASSIFIERS, "modality_gate", "chest_anomaly", "vqa")


def _state(model: CompactResNet) -> dict[str, torch.Tensor]:
    return {f"net.{k}": v for k, v in model.state_dict().items()}


def train_classifier_bundle(name: str, data: Path, out: Path, seed: int, epochs: int | None) -> Card:
    spec = CLASSIFIERS[name]
    recipe = replace(spec.recipe, epochs=epochs or spec.recipe.epochs, seed=seed)
    ds = spec.load(data, seed)
    start = time.monotonic()
    model = train_classifier(ds.train.images, ds.train.labels, recipe, f"training {name}")
    minutes = (time.monotonic() - start) / 60
    logits = predict_logits(model, ds.val.images)
    folds = datasets.fold_of(ds.val.groups, seed)
    calibration, threshold, metrics, plots = binary_report(
        logits, ds.val.labels, folds, out / "plots", name, spec.title
    )
    if name == "pneumonia":
        from vesalius.vision.train.shift import shift_report

        metrics |= _subtype_sensitivity(ds.val, logits, calibration, threshold)
        # In-distribution validation is optimistic: the same films as another site's device would make them.
        predict = lambda x: calibrate(predict_logits(model, x), calibration)
        metrics["shift"] = shift_report(predict, ds.val.images, ds.val.labels, threshold)
    card = Card(
        name=name,
        version=VERSION,
        kind="classifier",
        task=spec.task,
        classes=list(ds.classes),
        positive_class=ds.classes[1],
        net=recipe.net.to_dict(),
        calibration=calibration,
        threshold=round(threshold, 4),
        operating_point="highest threshold with sensitivity >= 0.95 on validation",
        metrics=metrics,
        metrics_split=_split_text(ds),
        data=ds.source,
        licence=LICENCES[name],
        recipe=_recipe_dict(recipe, ds, minutes),
        plots=plots,
        **describe(name),
    )
    save_bundle(out, card, _state(model))
    return card


def _subtype_sensitivity(val: datasets.Split, logits, calibration, threshold) -> dict:
    """Kermany names carry the pneumonia subtype: is one kind missed more often than the other?"""
    probs = calibrate(logits, calibration)
    out = {}
    for subtype in ("bacteria", "virus"):
        mask = np.array([f"_{subtype}_" in n for n in val.names])
        if mask.any():
            out[f"sensitivity_{subtype}_at_shipped_threshold"] = round(float((probs[mask] >= threshold).mean()), 4)
    return out


def _split_text(ds: datasets.Dataset) -> str:
    return (
        f"validation: {len(ds.val.labels)} images ({int(ds.val.labels.sum())} positive) from "
        f"{len(set(ds.val.groups.tolist()))} groups held out of training; calibration and threshold cross-fitted "
        "in two folds of validation"
    )


def _recipe_dict(recipe: Recipe, ds: datasets.Dataset, minutes: float) -> dict:
    return {
        "architecture": "CompactResNet (project's own, trained from scratch, no pretrained weights)",
        "net": recipe.net.to_dict(),
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "optimiser": f"AdamW lr {recipe.lr} one-cycle, weight decay {recipe.weight_decay}",
        "augmentation": "rotation ±10°, scale ±10%, shift ±6%, gamma, contrast" if recipe.augment else "none",
        "loss": "class-weighted cross-entropy",
        "seed": recipe.seed,
        "train_images": len(ds.train.labels),
        "train_minutes_2_cores": round(minutes, 1),
    }


def train(
    name: str, data: Path, out: Path | None = None, seed: int = 0, epochs: int | None = None, holdout: str = "none"
) -> Card:
    """Rebuild one shipped model into `out` (default: the package's weights): bundle, card and plots."""
    out = out or WEIGHTS_DIR
    if holdout != "none" and name != "vqa":
        raise ModelWeightsError("--holdout is for vqa", "Leave it out for the other models")
    if name == "vqa":
        from vesalius.vision.train.vqa import train_vqa

        card = train_vqa(data, out, seed, epochs, holdout)  # type: ignore[arg-type]
    elif name in CLASSIFIERS:
        card = train_classifier_bundle(name, data, out, seed, epochs)
    elif name == "modality_gate":
        card = gate_report(data, out, seed, epochs, VERSION)
    elif name == "chest_anomaly":
        card = fit_anomaly(data, out, seed, VERSION)
    else:
        raise ModelWeightsError(f"no model called '{name}'", f"Choose one of: {', '.join(MODELS)}")
    write_markdown(card, out)
    return card
