"""Validation of a trained model, fitted and measured in two folds so no number comes from the data that tuned it.

For each fold, the calibration (temperature or Platt, whichever predicts the other fold better) and the operating
point are fitted on the other fold; the metrics are computed on the predictions pooled over both folds. The
shipped calibration and threshold are then fitted on the whole validation set.
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


def binary_report(
    logits: np.ndarray, labels: np.ndarray, folds: np.ndarray, plots: Path, name: str, title: str
) -> tuple[Calibration, float, dict[str, Any], list[str]]:
    """-> shipped calibration, shipped threshold, metrics, plot file names."""
    method = choose_method(logits, labels, folds)
    probs = np.empty(len(labels))
    predicted = np.empty(len(labels), dtype=bool)
    for k in np.unique(folds):
        fit, test = folds != k, folds == k
        c = _fit(logits[fit], labels[fit], method)
        point = operating_point(labels[fit], calibrate(logits[fit], c), min_sensitivity=MIN_SENSITIVITY)
        probs[test] = calibrate(logits[test], c)
        predicted[test] = probs[test] >= point.threshold
    pooled = confusion_at(labels, predicted.astype(float), 0.5)
    raw = calibrate(logits, Calibration(method="none"))
    before, after = reliability(labels, raw), reliability(labels, probs)
    ci = auroc_ci(labels, logits)
    shipped = _fit(logits, labels, method)
    threshold = operating_point(labels, calibrate(logits, shipped), min_sensitivity=MIN_SENSITIVITY).threshold
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
        "brier_after": round(brier(labels, probs), 4),
        "log_loss_after": round(log_loss(labels, probs), 4),
        "operating_point": f"sensitivity >= {MIN_SENSITIVITY} on the other fold",
        "sensitivity": round(pooled.sensitivity, 4),
        "specificity": round(pooled.specificity, 4),
        "ppv": round(pooled.ppv, 4),
        "npv": round(pooled.npv, 4),
        "accuracy": round(pooled.accuracy, 4),
    }
    return shipped, float(threshold), metrics, files
