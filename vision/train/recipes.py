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
from vesalius.vision.models.population import L2, QUANTILE, cross_fitted_outside, fit_population
from vesalius.vision.train import datasets
from vesalius.vision.train.anomaly_fit import fit_anomaly
from vesalius.vision.train.augment import PROFILES
from vesalius.vision.train.cards import LICENCES, describe, write_markdown
from vesalius.vision.train.evaluate import binary_report
from vesalius.vision.train.gate_eval import gate_report
from vesalius.vision.train.trainer import Recipe, predict_with_features, train_classifier

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
        recipe=Recipe(NetConfig(width=32, classes=1, input_size=224), epochs=12, augment_profile="acquisition"),
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
    return finish_classifier_bundle(name, model, ds, recipe, (time.monotonic() - start) / 60, data, out)


def finish_classifier_bundle(
    name: str, model: CompactResNet, ds: datasets.Dataset, recipe: Recipe, minutes: float, data: Path, out: Path
) -> Card:
    """Everything after training: calibration, operating point, validation, (pneumonia) population check and
    shift table, card and bundle."""
    spec = CLASSIFIERS[name]
    logits, val_features = predict_with_features(model, ds.val.images)
    folds = datasets.fold_of(ds.val.groups, recipe.seed)
    tensors, extra, shifted, outside, population = _state(model), {}, None, None, None
    if name == "pneumonia":
        from vesalius.vision.train.shift import SHIFTS, adult_chest_films, adult_chest_report
        from vesalius.vision.train.shift import shifted as shift_images

        # Children's films against adults' (VQA-RAD): the population the classifier must not raise alarms on.
        train_features = predict_with_features(model, ds.train.images)[1]
        adult_logits, adult_features = predict_with_features(model, adult_chest_films(data))
        population = fit_population(train_features, adult_features, val_features)
        adult_outside, _ = cross_fitted_outside(train_features, adult_features, val_features)
        tensors |= population.tensors()
        extra["population"] = {
            "limit": round(population.limit, 4),
            "quantile_of_validation": QUANTILE,
            "l2": L2,
            "features": f"mean and spread of each network stage ({len(population.mean)} values), logistic model",
            "other_population": f"VQA-RAD adult frontal chest films ({len(adult_features)})",
        }
        extra["training_ages_years"] = [1, 5]
        # In-distribution validation is optimistic: the same films as another site's device would make them.
        # Calibration and threshold are fitted on them too, so that they hold there.
        shifted, outside = {}, {"in_distribution": population.outside(val_features)}
        for copy, shift in SHIFTS.items():
            shifted[copy], features = predict_with_features(model, shift_images(ds.val.images, shift))
            outside[copy] = population.outside(features)
    calibration, threshold, metrics, plots = binary_report(
        logits, ds.val.labels, folds, out / "plots", name, spec.title, shifted, outside
    )
    if population is not None:
        metrics |= _subtype_sensitivity(ds.val, logits, calibration, threshold)
        adult_probs = calibrate(adult_logits, calibration)
        metrics["adult_chest_films"] = adult_chest_report(adult_probs, adult_outside, threshold)
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
        operating_point="highest threshold with sensitivity >= 0.95 on validation"
        + (" and on each shifted copy of it" if shifted else ""),
        extra=extra,
        metrics=metrics,
        metrics_split=_split_text(ds),
        data=ds.source,
        licence=LICENCES[name],
        recipe=_recipe_dict(recipe, ds, minutes),
        plots=plots,
        **describe(name),
    )
    save_bundle(out, card, tensors)
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
        "augmentation": PROFILES[recipe.augment_profile].describe() if recipe.augment else "none",
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
