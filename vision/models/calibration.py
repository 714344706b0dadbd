"""Post-hoc calibration of classifier logits: temperature scaling and Platt scaling.

Both are fitted on a held-out validation split by minimising the exact negative log-likelihood, computed in
numpy with log-sum-exp so large logits neither overflow nor lose precision. The fits are deterministic: no
random restarts, no learning rates. Temperature scaling keeps the ranking (AUROC is unchanged) and works for
binary (N,) and multi-class (N, C) logits; Platt scaling (binary only) also shifts the bias. The training code
fits both and keeps whichever has the lower validation NLL.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Temperatures outside this range mean the logits carry no usable scale (or a bug upstream), not a calibration.
_LOG_T_MIN = math.log(0.05)
_LOG_T_MAX = math.log(20.0)
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


# ---------------------------------------------------------------------------------------------------------------
# Validation and numerics


def _logits(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim not in (1, 2):
        raise ValueError(f"logits must be (N,) binary or (N, C) multi-class, got shape {z.shape}")
    if z.shape[0] == 0:
        raise ValueError("logits is empty")
    if z.ndim == 2 and z.shape[1] < 2:
        raise ValueError(f"multi-class logits need at least 2 columns, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"logits contain {int((~np.isfinite(z)).sum())} non-finite value(s)")
    return z


def _labels_for(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},) to match logits {z.shape}, got {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ValueError("labels contain non-finite values")
    yi = y.astype(np.int64)
    if np.any(yi != y):
        raise ValueError("labels must be integers")
    n_classes = 2 if z.ndim == 1 else z.shape[1]
    if yi.min() < 0 or yi.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes - 1}]; found range [{yi.min()}, {yi.max()}]")
    if z.ndim == 1 and (yi.min() == yi.max()):
        raise ValueError(f"calibration needs both classes; all {yi.size} labels are {yi[0]}")
    return yi


def _check_positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and positive, got {value}")
    return float(value)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-softplus(-x)) never overflows, unlike 1 / (1 + exp(-x)) for very negative x
    return np.exp(-np.logaddexp(0.0, -x))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _nll_scaled(z: np.ndarray, y: np.ndarray, s: float) -> float:
    """Mean NLL of the labels under logits s * z (s = 1 / T)."""
    zs = s * z
    if z.ndim == 1:
        return float(np.mean(np.logaddexp(0.0, zs) - y * zs))
    top = zs.max(axis=1)
    lse = top + np.log(np.exp(zs - top[:, None]).sum(axis=1))
    return float(np.mean(lse - zs[np.arange(y.size), y]))


def _nll_derivatives(z: np.ndarray, y: np.ndarray, s: float) -> tuple[float, float]:
    """First and second derivative of the mean NLL with respect to s; the NLL is convex in s."""
    if z.ndim == 1:
        p = _sigmoid(s * z)
        return float(np.mean((p - y) * z)), float(np.mean(p * (1.0 - p) * z * z))
    probs = _softmax(s * z)
    mean_z = (probs * z).sum(axis=1)
    var_z = (probs * z * z).sum(axis=1) - mean_z**2
    return float(np.mean(mean_z - z[np.arange(y.size), y])), float(np.mean(np.maximum(var_z, 0.0)))


def _golden_section(f: Callable[[float], float], lo: float, hi: float, tol: float) -> float:
    """Minimiser of a unimodal f on [lo, hi] to within tol."""
    a, b = lo, hi
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _INV_PHI * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _INV_PHI * (b - a)
            fd = f(d)
    return (a + b) / 2.0


# ---------------------------------------------------------------------------------------------------------------
# Temperature scaling


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.05, 20] minimising the NLL of softmax(logits / T) (sigmoid for (N,) logits).

    The NLL is convex in 1/T, hence unimodal in log T: a golden-section search over log T brackets the optimum,
    then Newton steps in 1/T (accepted only while the NLL does not rise) polish it to machine precision.
    """
    z = _logits(logits)
    y = _labels_for(z, labels)
    log_t = _golden_section(lambda u: _nll_scaled(z, y, math.exp(-u)), _LOG_T_MIN, _LOG_T_MAX, tol=1e-3)
    s = math.exp(-log_t)
    s_lo, s_hi = math.exp(-_LOG_T_MAX), math.exp(-_LOG_T_MIN)
    f = _nll_scaled(z, y, s)
    for _ in range(8):
        d1, d2 = _nll_derivatives(z, y, s)
        if d2 <= 0.0:
            break  # flat NLL (e.g. all-zero logits): every T is as good as another
        s_new = min(max(s - d1 / d2, s_lo), s_hi)
        f_new = _nll_scaled(z, y, s_new)
        if f_new > f:
            break
        converged = abs(s_new - s) <= 1e-12 * s
        s, f = s_new, f_new
        if converged:
            break
    return 1.0 / s


def apply_temperature(logits: np.ndarray, T: float) -> np.ndarray:
    """Probabilities after dividing the logits by T: sigmoid for (N,) logits, row-wise softmax for (N, C)."""
    z = _logits(logits)
    t = _check_positive("T", T)
    return _sigmoid(z / t) if z.ndim == 1 else _softmax(z / t)


# ---------------------------------------------------------------------------------------------------------------
# Platt scaling


def _platt_objective(z: np.ndarray, y: np.ndarray, a: float, b: float, l2: float) -> float:
    t = a * z + b
    return float(np.mean(np.logaddexp(0.0, t) - y * t) + 0.5 * l2 * (a * a + b * b))


def fit_platt(logits: np.ndarray, labels: np.ndarray, *, l2: float = 1e-4, max_iter: int = 100) -> tuple[float, float]:
    """(a, b) for sigmoid(a * logit + b), by damped Newton (IRLS) on the mean NLL plus l2/2 * (a^2 + b^2).

    The small L2 term keeps the fit finite when the validation split is perfectly separable, where the plain
    maximum-likelihood a would run off to infinity; it also makes the Hessian positive definite, so Newton with
    a backtracking line search always converges.
    """
    z = _logits(logits)
    if z.ndim != 1:
        raise ValueError(f"Platt scaling takes binary (N,) logits, got shape {z.shape}")
    y = _labels_for(z, labels).astype(np.float64)
    if not (math.isfinite(l2) and l2 > 0.0):
        raise ValueError(f"l2 must be finite and positive, got {l2}")
    a, b = 1.0, 0.0  # the identity map: start from the model's own probabilities
    f = _platt_objective(z, y, a, b, l2)
    for _ in range(max_iter):
        p = _sigmoid(a * z + b)
        r = p - y
        w = p * (1.0 - p)
        grad = np.array([np.mean(r * z) + l2 * a, np.mean(r) + l2 * b])
        hess = np.array([[np.mean(w * z * z) + l2, np.mean(w * z)], [np.mean(w * z), np.mean(w) + l2]])
        step = np.linalg.solve(hess, grad)
        decrease = float(grad @ step)
        if decrease <= 1e-15:
            break
        t = 1.0
        while t > 1e-10:
            a_new, b_new = a - t * step[0], b - t * step[1]
            f_new = _platt_objective(z, y, a_new, b_new, l2)
            if f_new <= f - 1e-4 * t * decrease:  # Armijo: a real decrease, not rounding noise
                break
            t /= 2.0
        else:
            break
        a, b, f = float(a_new), float(b_new), f_new
    return a, b


def apply_platt(logits: np.ndarray, a: float, b: float) -> np.ndarray:
    """Probabilities sigmoid(a * logit + b) for binary (N,) logits."""
    z = _logits(logits)
    if z.ndim != 1:
        raise ValueError(f"Platt scaling takes binary (N,) logits, got shape {z.shape}")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"a and b must be finite, got a={a}, b={b}")
    return _sigmoid(a * z + b)
