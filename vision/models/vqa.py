"""The embedded medical VQA model: the answer to a question about an image, out of the answers seen in training.

MEVF/BAN-style in spirit, small by design: the image is read by the modality gate's network (its four stages,
each pooled by mean and max), the question is a sentence vector (all-MiniLM-L6-v2, the encoder Vesalius already
ships, given by the caller so that vision knows nothing of text models), and a small fusion network classifies over
the training answers. Its probability is temperature-calibrated on images it never saw, and it abstains below the
card's threshold: saying "cannot tell" is better than a confident guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.preprocess import to_tensor

QUESTION_DIM = 384  # all-MiniLM-L6-v2
IMAGE_SIZE = 224


class VqaNet(nn.Module):
    """Question and image each projected, fused by sum and product, then classified over the answers."""

    def __init__(self, image_dim: int, answers: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.question = nn.Sequential(nn.Linear(QUESTION_DIM, hidden), nn.ReLU())
        self.image = nn.Sequential(nn.Dropout(0.2), nn.Linear(image_dim, hidden), nn.ReLU())
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, answers),
        )

    def forward(self, question: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        q, i = self.question(question), self.image(image)
        return self.head(torch.cat([q + i, q * i], dim=1))


def image_features(backbone: nn.Module, images: list[Image.Image]) -> np.ndarray:
    """N x F: every stage of the backbone pooled by mean and by max."""
    with torch.no_grad():
        maps = backbone.feature_maps(to_tensor(images, IMAGE_SIZE))  # type: ignore[operator]
        pooled = [torch.cat([m.mean(dim=(2, 3)), m.amax(dim=(2, 3))], dim=1) for m in maps]
    return torch.cat(pooled, dim=1).numpy()


@dataclass(frozen=True)
class VqaReading:
    answer: str | None  # None: abstained
    probability: float  # calibrated probability of the top answer
    alternatives: list[tuple[str, float]]  # the top answers, best first


class VqaModel:
    def __init__(self, card, tensors: dict[str, torch.Tensor], backbone: nn.Module):
        self.card = card
        self.answers: list[str] = card.classes
        try:
            self.mean, self.std = tensors["feature_mean"].numpy(), tensors["feature_std"].numpy()
            net = VqaNet(self.mean.shape[0], len(self.answers), hidden=int(card.net.get("hidden", 512)))
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ModelWeightsError(
                f"the VQA model's weights do not fit its card ({str(exc)[:120]})",
                "Rebuild it with `vesalius train vqa`",
            ) from None
        self.net = net.eval()
        self.backbone = backbone
        self.temperature = card.calibration.temperature
        self.abstain_below = float(card.threshold or 0.0)
        self.kinds = frozenset(card.extra.get("kinds", ()))

    def read(self, image: Image.Image, question: np.ndarray, top: int = 3) -> VqaReading:
        if question.shape != (QUESTION_DIM,):
            raise ValueError(f"the question vector must have {QUESTION_DIM} numbers, not {question.shape}")
        features = (image_features(self.backbone, [image]) - self.mean) / self.std
        with torch.no_grad():
            logits = self.net(torch.from_numpy(question[None].astype(np.float32)), torch.from_numpy(features).float())
            p = torch.softmax(logits[0] / self.temperature, dim=0).numpy()
        best = np.argsort(-p)[:top]
        alternatives = [(self.answers[k], round(float(p[k]), 4)) for k in best]
        answer, probability = alternatives[0]
        return VqaReading(answer if probability >= self.abstain_below else None, probability, alternatives)
