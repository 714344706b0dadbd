"""Is this film like the ones a model was trained on? A linear check over the model's own feature statistics.

A classifier's probability is calibrated on films like its training films; on a film from another population (an
adult's chest film, for a model trained on children's) it is a number without a meaning, and an alarm raised from
it is an alarm from a model on an image it was not trained on. The modality gate cannot see this: both are frontal
chest films.

The check reads the mean and spread of each stage of the classifier's network and scores, with a logistic model,
how much more the film resembles films of another population than the training films. It is fitted on the
training films against films known to come from elsewhere (for pneumonia: VQA-RAD's adult chest films), and its
limit is the score that 99% of held-out validation films stay within. A distance from the training films' mean
(Mahalanobis) was tried first and rejected: it called only 20% of adult films unlike the training films, because
the classifier's features place an adult film where a child's pneumonia film lies.

It tells the training population from the one it was fitted against, and nothing more: an image unlike both (a
flat grey square) can score as a child's film. The modality gate's pixel checks and classes stand before it and
keep such images from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

L2 = 0.01  # on standardised features: five-fold detection of held-out adult films 98% (95% at 0.1)
QUANTILE = 0.99  # of validation scores: about 1 in 100 films like the training films is called unlike them
_KEYS = ("population.mean", "population.scale", "population.weights", "population.bias")


def map_statistics(maps: list[torch.Tensor]) -> torch.Tensor:
    """N x (2 x channels of every stage): each stage's mean and standard deviation over the image."""
    return torch.cat([m.mean(dim=(2, 3)) for m in maps] + [m.std(dim=(2, 3)) for m in maps], dim=1)


@dataclass(frozen=True)
class PopulationCheck:
    mean: np.ndarray  # D, of the fitting features
    scale: np.ndarray  # D, their standard deviation
    weights: np.ndarray  # D
    bias: float
    limit: float  # scores above it are outside the training range

    def score(self, features: np.ndarray) -> np.ndarray:
        """Log-odds that a film comes from the other population rather than the training one."""
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias

    def outside(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.limit

    def tensors(self) -> dict[str, torch.Tensor]:
        values = (self.mean, self.scale, self.weights, np.array([self.bias]))
        return {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in zip(_KEYS, values, strict=True)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], limit: float, width: int) -> PopulationCheck | None:
        """None when anything is missing, of the wrong size (`width` features) or not finite."""
        if any(k not in tensors for k in _KEYS) or not np.isfinite(limit):
            return None
        mean, scale, weights, bias = (tensors[k].double().numpy() for k in _KEYS)
        if not (mean.shape == scale.shape == weights.shape == (width,) and bias.shape == (1,)):
            return None
        if not all(np.isfinite(v).all() for v in (mean, scale, weights, bias)) or (scale <= 0).any():
            return None
        return cls(mean, scale, weights, float(bias[0]), float(limit))


def _fit_logistic(features: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L2-regularised logistic regression, classes weighted equally (a few dozen other films against thousands)."""
    x = np.concatenate([features, other]).astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = torch.from_numpy((x - mean) / scale)
    y = torch.from_numpy(np.r_[np.zeros(len(features)), np.ones(len(other))])
    w = torch.zeros(xs.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    positive_weight = torch.tensor(len(features) / len(other), dtype=torch.float64)
    optimiser = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, y, pos_weight=positive_weight)
        value = value + L2 * (w @ w)
        value.backward()
        return value

    optimiser.step(loss)
    return mean, scale, w.detach().numpy(), float(b.detach()[0])


def fit_population(train: np.ndarray, other: np.ndarray, validation: np.ndarray) -> PopulationCheck:
    """`train`: features of the training films; `other`: of films from another population; `validation`: of
    held-out films like the training ones, which set the limit."""
    mean, scale, weights, bias = _fit_logistic(train, other)
    probe = PopulationCheck(mean, scale, weights, bias, np.inf)
    return PopulationCheck(mean, scale, weights, bias, float(np.quantile(probe.score(validation), QUANTILE)))


def cross_fitted_outside(
    train: np.ndarray, other: np.ndarray, validation: np.ndarray, folds: int = 5
) -> tuple[np.ndarray, list[PopulationCheck]]:
    """Which `other` films a check fitted without them calls outside (five folds by film), and the fold checks:
    the honest detection rate, since the shipped check has seen every one of them."""
    fold = np.arange(len(other)) % folds
    outside = np.empty(len(other), dtype=bool)
    checks = []
    for k in range(folds):
        check = fit_population(train, other[fold != k], validation)
        outside[fold == k] = check.outside(other[fold == k])
        checks.append(check)
    return outside, checks
