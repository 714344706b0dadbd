"""A trained classifier with its calibration: images in, calibrated probabilities out, and whether each image is
like the ones the model was trained on (where its bundle carries a population check)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vesalius.vision.models.calibration import apply_platt, apply_temperature
from vesalius.vision.models.card import Calibration, Card
from vesalius.vision.models.net import CompactResNet
from vesalius.vision.models.population import PopulationCheck, map_statistics
from vesalius.vision.models.preprocess import to_tensor
from vesalius.vision.models.probability import Probability


def calibrate(logits: np.ndarray, c: Calibration) -> np.ndarray:
    """Raw logits -> calibrated probabilities (binary: P(positive) per image; multi-class: N x C)."""
    if c.method == "platt":
        return apply_platt(logits, c.platt_a, c.platt_b)
    return apply_temperature(logits, c.temperature)


@dataclass(frozen=True)
class Reading:
    probabilities: list[Probability]
    score: float | None  # population check: how unlike the training films; None where the model has no check
    limit: float | None  # the score validation films stay within


class CalibratedClassifier:
    def __init__(self, card: Card, net: CompactResNet, population: PopulationCheck | None = None):
        self.card, self.net, self.population = card, net, population

    @torch.inference_mode()
    def _forward(self, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        maps = self.net.feature_maps(to_tensor(images, self.card.net["input_size"]))
        logits = self.net.classify(maps[-1].mean(dim=(2, 3)))
        return logits.float().numpy(), map_statistics(maps).float().numpy()

    def logits(self, images: list[Image.Image]) -> np.ndarray:
        return self._forward(images)[0]

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        return calibrate(self.logits(images), self.card.calibration)

    def read(self, image: Image.Image) -> Reading:
        logits, features = self._forward([image])
        p = calibrate(logits, self.card.calibration)[0]
        score = None if self.population is None else float(self.population.score(features)[0])
        limit = None if self.population is None else self.population.limit
        familiar = None if score is None or limit is None else score <= limit
        if np.ndim(p) == 0:  # binary: report the positive class, against the operating point
            t = self.card.threshold
            probs = [
                Probability(
                    label=self.card.positive_class or self.card.classes[1],
                    probability=round(float(p), 4),
                    threshold=t,
                    above_threshold=None if t is None else bool(p >= t),
                    in_training_range=familiar,
                )
            ]
        else:
            ranked = sorted(zip(self.card.classes, p, strict=True), key=lambda kv: -kv[1])
            probs = [
                Probability(label=label, probability=round(float(q), 4), in_training_range=familiar)
                for label, q in ranked
            ]
        return Reading(probs, None if score is None else round(score, 2), limit)

    def predict(self, image: Image.Image) -> list[Probability]:
        return self.read(image).probabilities
