"""Binary classification metrics for calibrated medical classifiers: discrimination, operating points, calibration.

Everything is plain numpy so the numbers do not depend on scikit-learn being installed; the tests check them
against brute force and, where it is present, against scikit-learn. Labels are 0/1 (1 = the finding is present);
`scores` are any finite ranking values, `probs` are probabilities of the positive class in [0, 1].
Every function validates its input and raises ValueError naming the problem, because a silently wrong AUROC in a
report is worse than a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-7  # log-loss clipping: keeps one confidently wrong case from making the mean infinite


# ---------------------------------------------------------------------------------------------------------------
# Input validation


def _labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"labels must be numeric 0/1, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 or 1; found {np.unique(y[bad])[:5].tolist()}")
    return y.astype(np.int64)


def _values(values: np.ndarray, n: int, name: str) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.shape[0] != n:
        raise ValueError(f"labels and {name} differ in length: {n} vs {x.shape[0]}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(x)).sum())} non-finite value(s)")
    return x


def _probs(probs: np.ndarray, n: int, name: str = "probs") -> np.ndarray:
    p = _values(probs, n, name)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; found range [{p.min():g}, {p.max():g}]")
    return p


def _require_both_classes(y: np.ndarray, what: str) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        only = "negatives (0)" if n_pos == 0 else "positives (1)"
        raise ValueError(f"{what} is undefined when only one class is present: all {y.size} labels are {only}")
    return n_pos, n_neg


# ---------------------------------------------------------------------------------------------------------------
# Discrimination


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span (the Mann-Whitney convention)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], xs.size]
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def _auroc_checked(y: np.ndarray, s: np.ndarray, n_pos: int, n_neg: int) -> float:
    rank_sum = _average_ranks(s)[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties counting 1/2."""
    y = _labels(labels)
    s = _values(scores, y.size, "scores")
    n_pos, n_neg = _require_both_classes(y, "AUROC")
    return _auroc_checked(y, s, n_pos, n_neg)


def _roc_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with the true- and false-positive counts when predicting s >= threshold."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # the last index of each run of equal scores: all tied cases flip together
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = last + 1 - tps
    return s_sorted[last], tps, fps


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, thresholds descending, starting at (0, 0) with threshold +inf.

    Matches scikit-learn's `roc_curve(..., drop_intermediate=False)`; a case is predicted positive when
    score >= threshold.
    """
    y = _labels(labels)
    s = _values(scores, y.size, "scores")
    n_pos, n_neg = _require_both_classes(y, "the ROC curve")
    thresholds, tps, fps = _roc_counts(y, s)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def auroc_ci(
    labels: np.ndarray, scores: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Stratified bootstrap percentile confidence interval for the AUROC.

    Positives and negatives are resampled separately so every replicate keeps the study's prevalence and both
    classes, which plain resampling cannot promise for a rare finding.
    """
    y = _labels(labels)
    s = _values(scores, y.size, "scores")
    n_pos, n_neg = _require_both_classes(y, "AUROC")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    rng = np.random.default_rng(seed)
    pos = s[y == 1]
    neg = s[y == 0]
    aucs = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        p = pos[rng.integers(0, n_pos, n_pos)]
        neg_sorted = np.sort(neg[rng.integers(0, n_neg, n_neg)])
        # per positive: negatives strictly below count 1, ties count 1/2 (same as the rank formula, but O(n log n))
        below = np.searchsorted(neg_sorted, p, side="left")
        not_above = np.searchsorted(neg_sorted, p, side="right")
        aucs[i] = (below + not_above).sum() / (2.0 * n_pos * n_neg)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(aucs, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------------------
# Operating points


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion-matrix summaries at one threshold (positive when prob >= threshold); NaN where undefined."""

    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    accuracy: float


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _point(threshold: float, tp: int, fp: int, n_pos: int, n_neg: int) -> OperatingPoint:
    fn = n_pos - tp
    tn = n_neg - fp
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=_ratio(tp, n_pos),
        specificity=_ratio(tn, n_neg),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        accuracy=_ratio(tp + tn, n_pos + n_neg),
    )


def confusion_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> OperatingPoint:
    """The operating point at a given threshold; a ratio whose denominator is empty is NaN."""
    y = _labels(labels)
    p = _probs(probs, y.size)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    n_pos = int(y.sum())
    return _point(threshold, tp, fp, n_pos, y.size - n_pos)


def operating_point(labels: np.ndarray, probs: np.ndarray, *, min_sensitivity: float | None = None) -> OperatingPoint:
    """Choose a threshold among the observed probabilities.

    With `min_sensitivity`: the highest threshold whose sensitivity still reaches it (a screening point: miss at
    most that fraction of findings, and flag as few normals as that allows). Without it: the threshold maximising
    Youden's J = sensitivity + specificity - 1, the highest one on ties.
    """
    y = _labels(labels)
    p = _probs(probs, y.size)
    n_pos, n_neg = _require_both_classes(y, "an operating point")
    thresholds, tps, fps = _roc_counts(y, p)
    tpr = tps / n_pos
    if min_sensitivity is not None:
        if not 0.0 <= min_sensitivity <= 1.0:
            raise ValueError(f"min_sensitivity must lie in [0, 1], got {min_sensitivity}")
        # sensitivity only grows as the threshold falls, so the first qualifying threshold is the highest;
        # the lowest threshold flags everything (sensitivity 1), so one always qualifies
        i = int(np.argmax(tpr >= min_sensitivity))
    else:
        i = int(np.argmax(tpr - fps / n_neg))
    return _point(thresholds[i], int(tps[i]), int(fps[i]), n_pos, n_neg)


# ---------------------------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class Reliability:
    """A binary calibration curve over equal-width bins of the positive-class probability.

    Per bin: mean predicted probability (`bin_confidence`), observed positive fraction (`bin_accuracy`) and the
    number of cases; both means are NaN for empty bins. ECE weights |observed - predicted| by bin size; MCE is
    the largest gap over non-empty bins.
    """

    bin_edges: np.ndarray
    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    bin_count: np.ndarray
    ece: float
    mce: float


def reliability(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> Reliability:
    """Calibration curve and ECE/MCE, binning the probability of the positive class over [0, 1]."""
    y = _labels(labels)
    p = _probs(probs, y.size)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # scikit-learn's calibration_curve convention: a probability on an inner edge belongs to the lower bin
    idx = np.searchsorted(edges[1:-1], p, side="left")
    count = np.bincount(idx, minlength=n_bins)
    filled = count > 0
    confidence = np.divide(
        np.bincount(idx, weights=p, minlength=n_bins), count, out=np.full(n_bins, np.nan), where=filled
    )
    observed = np.divide(
        np.bincount(idx, weights=y, minlength=n_bins), count, out=np.full(n_bins, np.nan), where=filled
    )
    gap = np.abs(observed[filled] - confidence[filled])
    return Reliability(
        bin_edges=edges,
        bin_confidence=confidence,
        bin_accuracy=observed,
        bin_count=count,
        ece=float((count[filled] / y.size * gap).sum()),
        mce=float(gap.max()),
    )


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the positive-class probability over equal-width bins (see `reliability`)."""
    return reliability(labels, probs, n_bins).ece


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome."""
    y = _labels(labels)
    p = _probs(probs, y.size)
    return float(np.mean((p - y) ** 2))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the outcomes, probabilities clipped to [1e-7, 1 - 1e-7]."""
    y = _labels(labels)
    p = np.clip(_probs(probs, y.size), _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
