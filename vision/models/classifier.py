"""A trained classifier with its calibration: images in, calibrated probabilities out."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vesalius.vision.models.calibration import apply_platt, apply_temperature
from vesalius.vision.models.card import Calibration, Card
from vesalius.vision.models.net import CompactResNet
from vesalius.vision.models.preprocess import to_tensor
from vesalius.vision.models.probability import Probability


def calibrate(logits: np.ndarray, c: Calibration) -> np.ndarray:
    """Raw logits -> calibrated probabilities (binary: P(positive) per image; multi-class: N x C)."""
    if c.method == "platt":
        return apply_platt(logits, c.platt_a, c.platt_b)
    return apply_temperature(logits, c.temperature)


class CalibratedClassifier:
    def __init__(self, card: Card, net: CompactResNet):
        self.card, self.net = card, net

    @torch.inference_mode()
    def logits(self, images: list[Image.Image]) -> np.ndarray:
        return self.net(to_tensor(images, self.card.net["input_size"])).float().numpy()

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        return calibrate(self.logits(images), self.card.calibration)

    def predict(self, image: Image.Image) -> list[Probability]:
        p = self.probabilities([image])[0]
        if np.ndim(p) == 0:  # binary: report the positive class, against the operating point
            t = self.card.threshold
            return [
                Probability(
                    label=self.card.positive_class or self.card.classes[1],
                    probability=round(float(p), 4),
                    threshold=t,
                    above_threshold=None if t is None else bool(p >= t),
                )
            ]
        ranked = sorted(zip(self.card.classes, p, strict=True), key=lambda kv: -kv[1])
        return [Probability(label=label, probability=round(float(q), 4)) for label, q in ranked]
