"""Metrics, calibration and evaluation plots of the image models: checked against brute force, constructed
examples with known answers, and scikit-learn where it happens to be installed."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesalius.vision.models.calibration import apply_platt, apply_temperature, fit_platt, fit_temperature
from vesalius.vision.models.metrics import (
    OperatingPoint,
    auroc,
    auroc_ci,
    brier,
    confusion_at,
    expected_calibration_error,
    log_loss,
    operating_point,
    reliability,
    roc_curve,
)
from vesalius.vision.models.plots import plot_reliability, plot_roc, plot_score_histogram


def _brute_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos = scores[labels == 1][:, None]
    neg = scores[labels == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _random_case(seed: int, n: int = 300, tied: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    # integer scores produce many ties; the label shift makes the AUROC something other than 0.5
    scores = rng.integers(0, 8, n) + 2 * labels if tied else rng.normal(size=n) + labels
    return labels, scores.astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------
# AUROC and the ROC curve


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tied", [True, False])
def test_auroc_matches_pairwise_brute_force(seed: int, tied: bool) -> None:
    labels, scores = _random_case(seed, tied=tied)
    assert auroc(labels, scores) == pytest.approx(_brute_auroc(labels, scores), abs=1e-12)


def test_auroc_and_roc_curve_match_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    for seed, tied in [(3, True), (4, False)]:
        labels, scores = _random_case(seed, tied=tied)
        assert auroc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores), abs=1e-12)
        fpr, tpr, thr = roc_curve(labels, scores)
        sk_fpr, sk_tpr, sk_thr = metrics.roc_curve(labels, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
        np.testing.assert_array_equal(thr[1:], sk_thr[1:])  # sklearn's first threshold changed across versions


def test_auroc_perfect_inverted_and_constant() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auroc(labels, scores) == 1.0
    assert auroc(labels, -scores) == 0.0
    assert auroc(labels, np.ones(5)) == 0.5
    assert auroc(labels.astype(bool), scores) == 1.0


def test_roc_curve_shape_and_endpoints() -> None:
    labels, scores = _random_case(5)
    fpr, tpr, thr = roc_curve(labels, scores)
    assert fpr[0] == tpr[0] == 0.0 and thr[0] == np.inf
    assert fpr[-1] == tpr[-1] == 1.0 and thr[-1] == scores.min()
    assert np.all(np.diff(thr) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(thr) == len(np.unique(scores)) + 1
    # the trapezoidal area under the full curve is the rank AUROC, ties included
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(labels, scores), abs=1e-12)


def test_auroc_ci_brackets_the_estimate_and_is_reproducible() -> None:
    labels, scores = _random_case(6, n=400, tied=False)
    lo, hi = auroc_ci(labels, scores, n_boot=500, seed=1)
    assert lo < auroc(labels, scores) < hi
    assert 0.0 <= lo < hi <= 1.0
    assert (lo, hi) == auroc_ci(labels, scores, n_boot=500, seed=1)
    narrow = auroc_ci(labels, scores, n_boot=500, seed=1, level=0.5)
    assert lo < narrow[0] < narrow[1] < hi


def test_auroc_ci_width_agrees_with_delong() -> None:
    # DeLong's variance sums a positives term and a negatives term; with few positives the first dominates, so a
    # bootstrap that failed to resample the positives would come out far too narrow
    rng = np.random.default_rng(11)
    labels = np.r_[np.ones(30, dtype=int), np.zeros(300, dtype=int)]
    scores = rng.normal(size=330) + 1.0 * labels
    pos, neg = scores[labels == 1], scores[labels == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    se = np.sqrt(kernel.mean(axis=1).var(ddof=1) / pos.size + kernel.mean(axis=0).var(ddof=1) / neg.size)
    lo, hi = auroc_ci(labels, scores, n_boot=2000, seed=0)
    assert (hi - lo) / (2 * 1.959964 * se) == pytest.approx(1.0, abs=0.15)


def test_auroc_ci_stratified_works_with_a_rare_class() -> None:
    # two positives in 200: unstratified resampling would often draw none and fail
    labels = np.zeros(200, dtype=int)
    labels[:2] = 1
    scores = np.linspace(0, 1, 200)[::-1]
    assert auroc_ci(labels, scores, n_boot=200) == (1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Operating points


@pytest.mark.parametrize("min_sensitivity", [0.8, 0.9, 0.95, 1.0])
def test_screening_point_is_the_highest_threshold_meeting_sensitivity(min_sensitivity: float) -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    probs = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    point = operating_point(labels, probs, min_sensitivity=min_sensitivity)
    assert point.sensitivity >= min_sensitivity
    assert point == confusion_at(labels, probs, point.threshold)
    higher = np.unique(probs[probs > point.threshold])
    assert all(confusion_at(labels, probs, t).sensitivity < min_sensitivity for t in higher)


def test_youden_point_on_a_constructed_example() -> None:
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.3, 0.35, 0.65, 0.5, 0.7, 0.8, 0.9])
    # at 0.7: sens 3/4, spec 1 (J 0.75); at 0.5: sens 1, spec 4/5 (J 0.8, the best)
    assert operating_point(labels, probs) == OperatingPoint(
        threshold=0.5, sensitivity=1.0, specificity=0.8, ppv=0.8, npv=1.0, accuracy=8 / 9
    )


def test_youden_tie_takes_the_higher_threshold() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    assert operating_point(labels, probs).threshold == 0.7  # J = 0.75 at both 0.7 and 0.4


def test_confusion_at_reports_undefined_ratios_as_nan() -> None:
    point = confusion_at(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.9]), threshold=1.5)
    assert point.sensitivity == 0.0 and point.specificity == 1.0 and np.isnan(point.ppv)
    assert point.npv == pytest.approx(1 / 3) and point.accuracy == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------------------------
# Calibration metrics


def _perfectly_calibrated(per_bin: int = 100) -> tuple[np.ndarray, np.ndarray]:
    # all cases of bin k sit at its centre c, and exactly c * per_bin of them are positive
    probs, labels = [], []
    for k in range(10):
        centre = (k + 0.5) / 10
        positives = round(centre * per_bin)
        probs.append(np.full(per_bin, centre))
        labels.append(np.r_[np.ones(positives), np.zeros(per_bin - positives)])
    return np.concatenate(labels).astype(int), np.concatenate(probs)


def test_ece_is_zero_when_perfectly_calibrated() -> None:
    labels, probs = _perfectly_calibrated()
    rel = reliability(labels, probs, n_bins=10)
    assert rel.ece == pytest.approx(0.0, abs=1e-12) and rel.mce == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(rel.bin_confidence, rel.bin_accuracy)
    assert rel.bin_count.tolist() == [100] * 10
    assert expected_calibration_error(labels, probs, n_bins=10) == rel.ece


def test_reliability_bins_are_closed_on_the_right() -> None:
    # scikit-learn's convention: a probability on an inner edge counts in the lower bin; 0 and 1 stay inside
    rel = reliability(np.array([0, 1, 0, 1, 1]), np.array([0.0, 0.25, 0.5, 0.75, 1.0]), n_bins=4)
    assert rel.bin_count.tolist() == [2, 1, 1, 1]
    np.testing.assert_allclose(rel.bin_confidence, [0.125, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(rel.bin_accuracy, [0.5, 0.0, 1.0, 1.0])
    assert rel.mce == pytest.approx(0.5) and rel.ece == pytest.approx((2 * 0.375 + 0.5 + 0.25) / 5)


def test_ece_is_large_when_overconfident() -> None:
    rng = np.random.default_rng(8)
    labels = (rng.random(2000) < 0.6).astype(int)  # true rate 0.6, predicted 0.99
    probs = np.full(2000, 0.99)
    rel = reliability(labels, probs)
    assert rel.ece == pytest.approx(0.99 - labels.mean(), abs=1e-12)
    assert rel.ece > 0.3
    assert int(rel.bin_count.sum()) == 2000 and np.isnan(rel.bin_confidence[0])


def test_reliability_matches_sklearn_calibration_curve() -> None:
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(9)
    probs = rng.random(1000)
    labels = (rng.random(1000) < probs**1.5).astype(int)
    rel = reliability(labels, probs, n_bins=15)
    sk_true, sk_pred = calibration.calibration_curve(labels, probs, n_bins=15, strategy="uniform")
    filled = rel.bin_count > 0
    np.testing.assert_allclose(rel.bin_accuracy[filled], sk_true)
    np.testing.assert_allclose(rel.bin_confidence[filled], sk_pred)


def test_brier_and_log_loss() -> None:
    labels = np.array([0, 1, 1, 0])
    probs = np.array([0.1, 0.8, 1.0, 0.0])
    assert brier(labels, probs) == pytest.approx((0.01 + 0.04) / 4)
    assert log_loss(labels, probs) == pytest.approx(-(np.log(0.9) + np.log(0.8) + 2 * np.log1p(-1e-7)) / 4)
    assert np.isfinite(log_loss(np.array([1, 0]), np.array([0.0, 1.0])))  # clipped, not infinite


# ---------------------------------------------------------------------------------------------------------------
# Temperature and Platt scaling


def test_temperature_scaling_recovers_t_and_improves_calibration() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0.0, 2.0, 20000)
    labels = (rng.random(20000) < _sigmoid(true_logit)).astype(int)
    logits = 2.0 * true_logit  # an overconfident model
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.1)
    before, after = _sigmoid(logits), apply_temperature(logits, t)
    assert log_loss(labels, after) < log_loss(labels, before)
    assert expected_calibration_error(labels, after) < expected_calibration_error(labels, before) / 2
    assert auroc(labels, after) == pytest.approx(auroc(labels, before), abs=1e-12)  # ranking unchanged


def test_temperature_scaling_multiclass() -> None:
    rng = np.random.default_rng(1)
    n, classes = 20000, 5
    true_logits = rng.normal(0.0, 1.5, (n, classes))
    true_probs = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(true_probs, axis=1)).sum(axis=1)
    logits = 0.5 * true_logits  # an underconfident model: the fitted T should be about 0.5
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(0.5, rel=0.1)
    probs = apply_temperature(logits, t)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    rows = np.arange(n)
    nll_after = -np.mean(np.log(probs[rows, labels]))
    nll_before = -np.mean(np.log(apply_temperature(logits, 1.0)[rows, labels]))
    assert nll_after < nll_before


def test_temperature_is_a_minimum_of_the_nll() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 3.0, 3000)
    labels = (rng.random(3000) < _sigmoid(logits / 1.7)).astype(int)
    t = fit_temperature(logits, labels)
    # the NLL is flat there: a central difference over log T (step 1e-5) finds a slope of rounding-noise size
    step = 1e-5
    upper = log_loss(labels, apply_temperature(logits, t * np.exp(step)))
    lower = log_loss(labels, apply_temperature(logits, t * np.exp(-step)))
    assert abs(upper - lower) / (2 * step) < 1e-8


def test_platt_recovers_slope_and_bias() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, 20000)
    labels = (rng.random(20000) < _sigmoid(0.5 * logits - 1.0)).astype(int)
    a, b = fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.1)


@pytest.mark.parametrize("scale", [1.0, 500.0])
def test_platt_on_separable_data_stays_finite(scale: float) -> None:
    rng = np.random.default_rng(4)
    logits = scale * np.r_[-rng.uniform(2, 6, 100), rng.uniform(2, 6, 100)]
    labels = np.r_[np.zeros(100, dtype=int), np.ones(100, dtype=int)]
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        a, b = fit_platt(logits, labels, l2=1e-3)
        probs = apply_platt(logits, a, b)
    assert np.isfinite([a, b]).all() and a > 0
    # a true optimum of mean NLL + l2/2 (a^2 + b^2): the gradient vanishes
    residual = probs - labels
    assert np.mean(residual * logits) + 1e-3 * a == pytest.approx(0.0, abs=1e-9)
    assert np.mean(residual) + 1e-3 * b == pytest.approx(0.0, abs=1e-9)
    assert probs[labels == 1].min() > 0.9 and probs[labels == 0].max() < 0.1


# ---------------------------------------------------------------------------------------------------------------
# Plots


def _png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_plots_write_pngs_of_the_expected_size(tmp_path: Path) -> None:
    labels, scores = _random_case(10, tied=False)
    probs = _sigmoid(3 * scores)
    fpr, tpr, _ = roc_curve(labels, probs)
    point = operating_point(labels, probs, min_sensitivity=0.9)
    roc = plot_roc(
        {"model": (fpr, tpr, auroc(labels, probs)), "chance-ish": (np.r_[0, 1], np.r_[0, 1], 0.5)},
        tmp_path / "nested" / "roc.png",
        "ROC",
        operating_points={"model": (point.sensitivity, point.specificity)},
    )
    assert _png_size(roc) == (600, 600)

    calibrated = _sigmoid(scores - 0.5)
    rel = plot_reliability(
        reliability(labels, probs), reliability(labels, calibrated), tmp_path / "rel.png", "Reliability"
    )
    assert _png_size(rel) == (600, 720)
    assert _png_size(plot_reliability(None, reliability(labels, calibrated), tmp_path / "r2.png", "R")) == (600, 720)

    hist = plot_score_histogram(
        scores[labels == 0], scores[labels == 1], 0.5, tmp_path / "hist.png", "Anomaly scores", "score"
    )
    assert _png_size(hist) == (600, 600)


# ---------------------------------------------------------------------------------------------------------------
# Invalid input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: auroc(np.array([0, 1, 1]), np.array([0.1, 0.2])), "length"),
        (lambda: auroc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3])), "one class"),
        (lambda: auroc(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3])), "0 or 1"),
        (lambda: auroc(np.array([0, 1]), np.array([0.1, np.nan])), "non-finite"),
        (lambda: roc_curve(np.array([0, 0]), np.array([0.1, 0.2])), "one class"),
        (lambda: auroc_ci(np.array([0, 1]), np.array([0.1, 0.2]), level=1.0), "level"),
        (lambda: brier(np.array([0, 1]), np.array([0.1, 1.2])), r"\[0, 1\]"),
        (lambda: log_loss(np.array([0, 1]), np.array([-0.1, 0.5])), r"\[0, 1\]"),
        (lambda: reliability(np.array([0, 1]), np.array([0.1, 0.5, 0.7])), "length"),
        (lambda: operating_point(np.array([0, 1]), np.array([0.1, 0.9]), min_sensitivity=1.5), "min_sensitivity"),
        (lambda: fit_temperature(np.zeros(3), np.array([0, 1])), "shape"),
        (lambda: fit_temperature(np.zeros((3, 4)), np.array([0, 1, 4])), "labels must lie"),
        (lambda: fit_temperature(np.zeros(3), np.array([1, 1, 1])), "both classes"),
        (lambda: apply_temperature(np.zeros(3), 0.0), "positive"),
        (lambda: fit_platt(np.zeros((3, 2)), np.array([0, 1, 1])), "binary"),
    ],
)
def test_invalid_input_raises_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
