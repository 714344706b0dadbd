"""Anomaly detection learnt from normal images only: a PatchCore-style memory of normal patch features.

Every patch of a normal training image leaves its feature vector (two stages of a backbone, locally averaged) in a
memory, thinned to a coreset that still covers them all. A new image's patches are scored by the distance to the
nearest normal patch: a patch unlike any normal one is unusual. The image score is the mean of its most unusual
patches (diffuse disease such as pneumonia moves many patches a little; one outlier patch is often noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, Field
from scipy import ndimage

from vesalius.vision.models.card import Card
from vesalius.vision.models.net import CompactResNet
from vesalius.vision.models.preprocess import standardise, to_grey_array

TOP_FRACTION = 0.05  # share of patches averaged into the image score


@dataclass(frozen=True)
class PatchFeatures:
    stages: tuple[int, ...] = (2, 3)  # feature maps read from the backbone, finest first (14 and 7 px at 224 px)
    dim: int = 128  # after a fixed random projection: memory size and search time scale with it
    seed: int = 0

    def projection(self, channels: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return torch.randn(channels, self.dim, generator=g) / self.dim**0.5


@torch.inference_mode()
def patch_features(backbone: CompactResNet, images: torch.Tensor, spec: PatchFeatures) -> torch.Tensor:
    """uint8 N x 1 x H x W -> float32 N x h x w x dim, on the grid of the finest stage used."""
    maps = backbone.feature_maps(standardise(images))
    chosen = [F.avg_pool2d(maps[i], 3, 1, 1) for i in spec.stages]  # each patch sees its neighbours, as PatchCore does
    size = chosen[0].shape[-2:]
    stacked = torch.cat([F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in chosen], dim=1)
    feats = stacked.permute(0, 2, 3, 1).float()
    return feats @ spec.projection(feats.shape[-1])


def greedy_coreset(points: torch.Tensor, size: int, seed: int = 0, sketch_dim: int = 32) -> torch.Tensor:
    """Indices of `size` points chosen farthest-first, so that every point has a chosen one near it. Distances are
    computed in a random low-dimensional sketch, which keeps the order of distances well enough and is fast."""
    if size >= len(points):
        return torch.arange(len(points))
    g = torch.Generator().manual_seed(seed)
    sketch = points @ (torch.randn(points.shape[1], sketch_dim, generator=g) / sketch_dim**0.5)
    chosen = [int(torch.randint(len(points), (1,), generator=g))]
    nearest = torch.cdist(sketch, sketch[chosen[0]][None]).squeeze(1)
    for _ in range(size - 1):
        nxt = int(torch.argmax(nearest))
        chosen.append(nxt)
        nearest = torch.minimum(nearest, torch.cdist(sketch, sketch[nxt][None]).squeeze(1))
    return torch.tensor(chosen)


class NormalMemory:
    """The coreset of normal patch features, searched exactly with FAISS (small enough that exact is fast)."""

    def __init__(self, memory: np.ndarray):
        self.memory = np.ascontiguousarray(memory, dtype=np.float32)
        self.index = faiss.IndexFlatL2(self.memory.shape[1])
        self.index.add(self.memory)

    def patch_scores(self, feats: torch.Tensor) -> np.ndarray:
        """N x h x w x dim -> N x h x w distance to the nearest normal patch."""
        n, h, w, d = feats.shape
        dist, _ = self.index.search(np.ascontiguousarray(feats.reshape(-1, d).numpy(), dtype=np.float32), 1)
        return np.sqrt(np.maximum(dist[:, 0], 0)).reshape(n, h, w)


def image_scores(patch_maps: np.ndarray) -> np.ndarray:
    flat = np.sort(patch_maps.reshape(len(patch_maps), -1), axis=1)
    k = max(1, round(flat.shape[1] * TOP_FRACTION))
    return flat[:, -k:].mean(axis=1)


def smooth(patch_map: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian smoothing of one h x w map (PatchCore smooths its upsampled map the same way)."""
    return ndimage.gaussian_filter(patch_map.astype(np.float32), sigma, mode="nearest", truncate=3.0)


class AnomalyRegion(BaseModel):
    """A connected area whose patches lie beyond the normal range, in fractions of the image (origin top-left)."""

    x: float
    y: float
    width: float
    height: float
    peak: float = Field(description="highest patch distance, as a multiple of the normal patch limit")
    area_fraction: float = Field(description="share of the image the region covers")


class AnomalyResult(BaseModel):
    score: float = Field(description="image score: mean distance of the most unusual 5% of patches to normal ones")
    threshold: float = Field(description="score above which an image is called unusual (from validation normals)")
    normal_percentile: float = Field(description="share of validation normal images with a lower score, in %")
    unusual: bool
    regions: list[AnomalyRegion]


class AnomalyDetector:
    def __init__(self, card: Card, backbone: CompactResNet, memory: np.ndarray):
        self.card, self.backbone = card, backbone
        self.memory = NormalMemory(memory)
        self.spec = PatchFeatures(**card.extra["features"])

    def patch_maps(self, images: list[Image.Image]) -> np.ndarray:
        size = self.card.net["input_size"]
        x = torch.from_numpy(np.stack([to_grey_array(im, size) for im in images]))[:, None]
        return self.memory.patch_scores(patch_features(self.backbone, x, self.spec))

    def result(self, patch_map: np.ndarray) -> tuple[AnomalyResult, np.ndarray]:
        """One image's patch map -> the result and the smoothed map in multiples of the normal patch limit."""
        extra = self.card.extra
        score = float(image_scores(patch_map[None])[0])
        limit = float(extra["patch_limit"])
        heat = smooth(patch_map) / limit
        quantiles = np.asarray(extra["normal_score_quantiles"])
        percentile = float(np.interp(score, quantiles, np.linspace(0, 100, len(quantiles))))
        threshold = float(self.card.threshold)
        return (
            AnomalyResult(
                score=round(score, 4),
                threshold=round(threshold, 4),
                normal_percentile=round(percentile, 1),
                unusual=score >= threshold,
                regions=regions(heat),
            ),
            heat,
        )


# A region is the core of an unusual area, not everything above the normal limit: on a film with diffuse change
# most patches exceed it, and one box around them all would point nowhere. Each region is a connected area at or
# above half its peak (and the normal limit), inside the lung fields, its box covering at most MAX_REGION_AREA of the
# image.
MAX_REGION_AREA = 0.25
HALF_MAXIMUM = 0.5


def lung_fields(h: int, w: int) -> np.ndarray:
    """Where the lungs lie on a frontal chest film, as a prior: two upright ellipses either side of the
    mediastinum. Coarse on purpose (no segmentation model ships): it keeps regions off the neck, shoulders, belly
    and the film's edges, where a frontal film's normal variation is largest."""
    yy, xx = np.mgrid[0:h, 0:w]
    y, x = (yy + 0.5) / h, (xx + 0.5) / w
    # Apart at the midline, so a region never spans both lungs through the mediastinum.
    left = (((x - 0.3) / 0.17) ** 2 + ((y - 0.5) / 0.36) ** 2 <= 1) & (x < 0.45)
    right = (((x - 0.7) / 0.17) ** 2 + ((y - 0.5) / 0.36) ** 2 <= 1) & (x > 0.55)
    return left | right


def _box_area(mask: np.ndarray) -> int:
    rows, cols = np.nonzero(mask)
    return int((rows.max() + 1 - rows.min()) * (cols.max() + 1 - cols.min()))


def regions(heat: np.ndarray, max_regions: int = 3) -> list[AnomalyRegion]:
    """Tight areas above the normal patch limit (heat > 1) inside the lung fields, the most unusual first."""
    h, w = heat.shape
    inside = np.where(lung_fields(h, w), heat, 0.0)
    found: list[AnomalyRegion] = []
    remaining = inside > 1.0
    while remaining.any() and len(found) < max_regions:
        peak = float(inside[remaining].max())
        level = max(1.0, HALF_MAXIMUM * peak)
        labelled, _ = ndimage.label(inside >= level)
        seed = np.unravel_index(np.argmax(np.where(remaining, inside, -np.inf)), inside.shape)
        mask = labelled == labelled[seed]
        while _box_area(mask) > MAX_REGION_AREA * h * w and level < peak:  # still too wide: keep its core
            level = min(peak, level + 0.1 * peak)
            labelled, _ = ndimage.label(inside >= level)
            mask = labelled == labelled[seed]
        rows, cols = np.nonzero(mask)
        found.append(
            AnomalyRegion(
                x=round(cols.min() / w, 3),
                y=round(rows.min() / h, 3),
                width=round((cols.max() + 1 - cols.min()) / w, 3),
                height=round((rows.max() + 1 - rows.min()) / h, 3),
                peak=round(peak, 2),
                area_fraction=round(float(mask.sum()) / (h * w), 4),
            )
        )
        # Everything connected to this region above the normal limit belongs to it: the next starts elsewhere.
        around, _ = ndimage.label(remaining)
        remaining &= around != around[seed]
    return found
