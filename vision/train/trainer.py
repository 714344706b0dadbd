"""One training loop for every classifier here: AdamW, one-cycle learning rate, fixed epochs, fixed seed.

Fixed epochs rather than early stopping on validation: validation then stays untouched by training and only
calibration and the operating point are fitted on it (in folds, see datasets.fold_of).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vesalius.vision.models.net import CompactResNet, NetConfig
from vesalius.vision.models.population import map_statistics
from vesalius.vision.models.preprocess import standardise
from vesalius.vision.train.augment import PROFILES, augment


@dataclass(frozen=True)
class Recipe:
    net: NetConfig
    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    augment: float = 1.0  # augmentation strength; 0 turns it off (28 px images)
    augment_profile: str = "standard"  # a key of augment.PROFILES
    seed: int = 0
    threads: int = 2


def seed_everything(seed: int, threads: int) -> torch.Generator:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def _loss(logits: torch.Tensor, y: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    if logits.ndim == 1:
        # Positive-class weight from the class balance, so a 3:1 disease majority does not bias the logit.
        return F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=class_weights[1] / class_weights[0])
    return F.cross_entropy(logits, y, weight=class_weights)


def train_classifier(images: np.ndarray, labels: np.ndarray, recipe: Recipe, desc: str) -> CompactResNet:
    """images: uint8 N x H x W at recipe.net.input_size; labels: int class per image."""
    generator = seed_everything(recipe.seed, recipe.threads)
    model = CompactResNet(recipe.net).to(memory_format=torch.channels_last)
    x_all = torch.from_numpy(images)[:, None]
    y_all = torch.from_numpy(labels)
    counts = torch.bincount(y_all, minlength=max(2, recipe.net.classes)).float().clamp_min(1)
    class_weights = counts.sum() / (len(counts) * counts)
    steps_per_epoch = max(1, len(y_all) // recipe.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.2
    )
    model.train()
    bar = tqdm(total=recipe.epochs * steps_per_epoch, desc=desc, unit="batch")
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(y_all), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            x = x_all[idx].float()
            if recipe.augment:
                x = augment(x, generator, recipe.augment, PROFILES[recipe.augment_profile])
            loss = _loss(model(standardise(x)), y_all[idx], class_weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running += loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / (step + 1):.3f}")
    bar.close()
    return model.eval()


@torch.inference_mode()
def predict_with_features(
    model: CompactResNet, images: np.ndarray, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """-> logits, and each stage's statistics (what the population check reads)."""
    model.eval()
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size])[:, None]
        maps = model.feature_maps(standardise(x))
        logits.append(model.classify(maps[-1].mean(dim=(2, 3))).float().numpy())
        features.append(map_statistics(maps).float().numpy())
    return np.concatenate(logits), np.concatenate(features)


def predict_logits(model: CompactResNet, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    return predict_with_features(model, images, batch_size)[0]
