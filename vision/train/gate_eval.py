"""Train and validate the modality gate: which kind of image is this, so only matching models run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vision.models.calibration import apply_temperature, fit_temperature
from vision.models.card import Calibration, Card, save_bundle
from vision.models.gate import CHEST_XRAY, MIN_PROBABILITY
from vision.models.metrics import reliability
from vision.models.net import NetConfig
from vision.models.plots import plot_reliability
from vision.train import datasets
from vision.train.cards import LICENCES, describe
from vision.train.trainer import Recipe, predict_logits, train_classifier


def gate_report(data: Path, out: Path, seed: int, epochs: int | None, version: str) -> Card:
    ds = datasets.gate(data, seed=seed)
    recipe = Recipe(NetConfig(width=16, classes=len(ds.classes), input_size=224), epochs=epochs or 15, seed=seed)
    start = time.monotonic()
    model = train_classifier(ds.train.images, ds.train.labels, recipe, "training modality_gate")
    minutes = (time.monotonic() - start) / 60
    logits = predict_logits(model, ds.val.images)
    y = ds.val.labels
    folds = datasets.fold_of(ds.val.groups, seed)
    probs = np.empty_like(logits)
    for k in np.unique(folds):
        fit, test = folds != k, folds == k
        probs[test] = apply_temperature(logits[test], fit_temperature(logits[fit], y[fit]))
    temperature = fit_temperature(logits, y)
    predicted = probs.argmax(1)
    chest = ds.classes.index(CHEST_XRAY)
    # The runtime rule (vision.models.gate): a colour picture is never a radiograph, and the gate must be sure.
    accepted = (predicted == chest) & (probs[:, chest] >= MIN_PROBABILITY) & ~ds.val.colour
    confusion = np.zeros((len(ds.classes), len(ds.classes)), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    correct = (predicted == y).astype(int)
    before = reliability(correct, apply_temperature(logits, 1.0).max(1))
    after = reliability(correct, probs.max(1))
    plot = plot_reliability(
        before, after, out / "plots" / "modality_gate_reliability.png", "Modality gate: top-label calibration"
    )
    metrics = {
        "n": len(y),
        "per_class_n": {c: int((y == i).sum()) for i, c in enumerate(ds.classes)},
        "accuracy": round(float(correct.mean()), 4),
        "per_class_recall": {c: round(float((predicted[y == i] == i).mean()), 4) for i, c in enumerate(ds.classes)},
        "confusion_rows_true_cols_predicted": confusion.tolist(),
        "non_chest_accepted_as_chest_xray": int(accepted[y != chest].sum()),
        "chest_xray_accepted": round(float(accepted[y == chest].mean()), 4),
        "ece_top_label_before": round(before.ece, 4),
        "ece_top_label_after": round(after.ece, 4),
    }
    card = Card(
        name="modality_gate",
        version=version,
        kind="gate",
        task="kind of image: " + ", ".join(ds.classes),
        classes=list(ds.classes),
        net=recipe.net.to_dict(),
        calibration=Calibration(method="temperature", temperature=temperature),
        threshold=MIN_PROBABILITY,
        operating_point=f"a plain image counts as a frontal chest X-ray at probability >= {MIN_PROBABILITY}",
        metrics=metrics,
        metrics_split=f"validation: {len(y)} images, a quarter of the patients or images of each class, held out; "
        "temperature cross-fitted in two folds",
        data=ds.source,
        licence=LICENCES["modality_gate"],
        recipe={
            "architecture": "CompactResNet width 16, from scratch",
            "epochs": recipe.epochs,
            "seed": seed,
            "train_images": len(ds.train.labels),
            "train_minutes_2_cores": round(minutes, 1),
        },
        plots=[plot.name],
        **describe("modality_gate"),
    )
    save_bundle(out, card, {f"net.{k}": v for k, v in model.state_dict().items()})
    return card
