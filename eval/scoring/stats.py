"""Uncertainty for benchmark numbers: percentile bootstrap of a mean, paired bootstrap of a difference between
two runs on the same items, and the exact McNemar test. numpy only; fixed seeds so a report is reproducible."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_B = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def bootstrap_ci(
    values: Sequence[float], *, b: int = DEFAULT_B, seed: int = DEFAULT_SEED, level: float = 0.95
) -> Interval:
    """Percentile bootstrap interval of the mean: `b` resamples with replacement drawn by numpy's PCG64 seeded with
    `seed`. Empty input -> NaNs; one value -> a zero-width interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(b, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(lo), float(hi))


@dataclass(frozen=True)
class PairedDifference:
    difference: float  # mean(a) - mean(b)
    low: float
    high: float
    p_value: float  # two-sided bootstrap p: twice the share of resampled differences on the far side of 0


def paired_bootstrap(
    a: Sequence[float], b_values: Sequence[float], *, b: int = DEFAULT_B, seed: int = DEFAULT_SEED, level: float = 0.95
) -> PairedDifference:
    """Bootstrap of mean(a - b) resampling ITEMS (the same indices for both runs), which keeps the pairing and so
    is far tighter than two independent intervals when the runs agree on most items."""
    x, y = np.asarray(a, dtype=float), np.asarray(b_values, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired runs must score the same items: {x.shape} != {y.shape}")
    if x.size == 0:
        return PairedDifference(math.nan, math.nan, math.nan, math.nan)
    d = x - y
    rng = np.random.default_rng(seed)
    diffs = d[rng.integers(0, d.size, size=(b, d.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(diffs, [alpha, 1 - alpha])
    est = float(d.mean())
    if est == 0.0 and np.all(diffs == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))
    return PairedDifference(est, float(lo), float(hi), p)


@dataclass(frozen=True)
class McNemar:
    only_a: int  # items run A got right and run B wrong
    only_b: int  # items run B got right and run A wrong
    p_value: float


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Exact (binomial) McNemar test on paired right/wrong outcomes: under H0 the discordant items split
    Binomial(n, 1/2); two-sided p = min(1, 2 * P(X <= min(only_a, only_b))). No discordant items -> p = 1.
    Integer arithmetic, so it is exact for any n."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired runs must score the same items")
    only_a = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return McNemar(0, 0, 1.0)
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return McNemar(only_a, only_b, min(1.0, 2 * tail / 2**n))
