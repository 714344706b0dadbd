"""Batched augmentation on CPU tensors: small geometric and exposure changes a radiograph plausibly has.

No flips: left and right carry anatomy (the heart is on the patient's left), and a flipped film is not a film
anyone takes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """x: float N x 1 x H x W in [0, 255]; returns the same shape and range."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    angle = uniform(-10, 10) * strength * math.pi / 180
    scale = 1 + uniform(-0.1, 0.1) * strength
    tx, ty = uniform(-0.06, 0.06) * strength, uniform(-0.06, 0.06) * strength
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gamma = torch.exp(uniform(-0.25, 0.25) * strength).view(n, 1, 1, 1)
    x = 255 * (x / 255).clamp(0, 1) ** gamma
    contrast = (1 + uniform(-0.2, 0.2) * strength).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean).clamp(0, 255)
