"""Validation of a trained model, fitted and measured in two folds so no number comes from the data that tuned it.

For each fold, the calibration (temperature or Platt, whichever predicts the other fold better) and the operating
point are fitted on the other fold; the metrics are computed on the predictions pooled over both folds. The
shipped calibration and threshold are then fitted on the whole validation set.

With shifted copies of the validation images (vision/train/shift.py), the calibration is fitted on the images and
all their copies together, and the operating point is the highest threshold that keeps the sensitivity on the
images and on every copy: calibration and screening sensitivity that hold when the film comes from elsewhere, paid
for with some specificity. The shift table is then cross-fitted in the same folds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vesalius.vision.models.calibration import fit_platt, fit_temperature
from vesalius.vision.models.card import Calibration
from vesalius.vision.models.classifier import calibrate
from vesalius.vision.models.metrics import (
    auroc,
    auroc_ci,
    brier,
    confusion_at,
    log_loss,
    operating_point,
    reliability,
    roc_curve,
)
from vesalius.vision.models.plots import plot_reliability, plot_roc

MIN_SENSITIVITY = 0.95  # screening operating point: a missed disease costs more than a second look


def _fit(logits: np.ndarray, labels: np.ndarray, method: str) -> Calibration:
    if method == "platt":
        a, b = fit_platt(logits, labels)
        return Calibration(method="platt", platt_a=a, platt_b=b)
    return Calibration(method="temperature", temperature=fit_temperature(logits, labels))


def _nll(labels: np.ndarray, probs: np.ndarray) -> float:
    return (
        log_loss(labels, probs)
        if probs.ndim == 1
        else float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1))))
    )


def choose_method(logits: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> str:
    methods = ["temperature", "platt"] if logits.ndim == 1 else ["temperature"]
    out_of_fold = {}
    for method in methods:
        nll = 0.0
        for k in np.unique(folds):
            fit, test = folds != k, folds == k
            nll += _nll(labels[test], calibrate(logits[test], _fit(logits[fit], labels[fit], method))) * test.sum()
        out_of_fold[method] = nll
    return min(out_of_fold, key=out_of_fold.get)


def _pooled(logits: np.ndarray, labels: np.ndarray, copies: dict[str, np.ndarray], mask: np.ndarray):
    return np.concatenate([logits[mask], *(c[mask] for c in copies.values())]), np.tile(labels[mask], 1 + len(copies))


def _screening_threshold(
    logits: np.ndarray, labels: np.ndarray, copies: dict[str, np.ndarray], mask: np.ndarray, c: Calibration
) -> float:
    """The highest threshold with sensitivity >= MIN_SENSITIVITY on the images and on each copy of them."""
    return min(
        operating_point(labels[mask], calibrate(x[mask], c), min_sensitivity=MIN_SENSITIVITY).threshold
        for x in (logits, *copies.values())
    )


def binary_report(
    logits: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    plots: Path,
    name: str,
    title: str,
    shifted: dict[str, np.ndarray] | None = None,
    outside: dict[str, np.ndarray] | None = None,
) -> tuple[Calibration, float, dict[str, Any], list[str]]:
    """-> shipped calibration, shipped threshold, metrics, plot file names.

    `shifted`: logits of shifted copies of the same images, by copy name; `outside`: which images (by copy name,
    and `in_distribution`) the population check calls unlike the training images. With them, metrics["shift"]."""
    copies = shifted or {}
    everything = np.ones(len(labels), dtype=bool)
    pooled_logits, pooled_labels = _pooled(logits, labels, copies, everything)
    method = choose_method(pooled_logits, pooled_labels, np.tile(folds, 1 + len(copies)))
    sets = {"in_distribution": logits, **copies}
    probs = {k: np.empty(len(labels)) for k in sets}
    predicted = {k: np.empty(len(labels), dtype=bool) for k in sets}
    for k in np.unique(folds):
        fit, test = folds != k, folds == k
        c = _fit(*_pooled(logits, labels, copies, fit), method)
        threshold = _screening_threshold(logits, labels, copies, fit, c)
        for key, x in sets.items():
            probs[key][test] = calibrate(x[test], c)
            predicted[key][test] = probs[key][test] >= threshold
    pooled = confusion_at(labels, predicted["in_distribution"].astype(float), 0.5)
    raw = calibrate(logits, Calibration(method="none"))
    before, after = reliability(labels, raw), reliability(labels, probs["in_distribution"])
    ci = auroc_ci(labels, logits)
    shipped = _fit(pooled_logits, pooled_labels, method)
    threshold = _screening_threshold(logits, labels, copies, everything, shipped)
    fpr, tpr, _ = roc_curve(labels, logits)
    score = auroc(labels, logits)
    files = [
        plot_roc(
            {name: (fpr, tpr, score)},
            plots / f"{name}_roc.png",
            title,
            operating_points={name: (pooled.sensitivity, pooled.specificity)},
        ).name,
        plot_reliability(before, after, plots / f"{name}_reliability.png", f"{title}: calibration").name,
    ]
    metrics = {
        "n": len(labels),
        "positives": int(labels.sum()),
        "auroc": round(score, 4),
        "auroc_ci95": [round(ci[0], 4), round(ci[1], 4)],
        "calibration_method": method,
        "ece_before": round(before.ece, 4),
        "ece_after": round(after.ece, 4),
        "brier_after": round(brier(labels, probs["in_distribution"]), 4),
        "log_loss_after": round(log_loss(labels, probs["in_distribution"]), 4),
        "operating_point": f"sensitivity >= {MIN_SENSITIVITY} on the other fold"
        + (" and on each shifted copy of it" if copies else ""),
        "sensitivity": round(pooled.sensitivity, 4),
        "specificity": round(pooled.specificity, 4),
        "ppv": round(pooled.ppv, 4),
        "npv": round(pooled.npv, 4),
        "accuracy": round(pooled.accuracy, 4),
    }
    if copies:
        from vesalius.vision.train.shift import row, with_worst

        outside = outside or {}
        metrics["shift"] = with_worst({k: row(labels, probs[k], predicted[k], outside.get(k)) for k in sets})
    return shipped, float(threshold), metrics, files
