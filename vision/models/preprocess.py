"""From an image to the tensor every model here reads: one grey channel, a fixed square size, standardised.

Each image is standardised by its own mean and spread, so a DICOM rendered through a different window or a JPEG
exported with other brightness reaches the model on the same scale as the training images.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_grey_array(image: Image.Image, size: int) -> np.ndarray:
    """uint8 H x W at `size` x `size`. The training images (Kermany, 224 px) were squashed to a square, so every
    image is resized the same way rather than padded."""
    grey = image.convert("L")
    if grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def standardise(batch: torch.Tensor) -> torch.Tensor:
    """uint8 or float N x 1 x H x W -> float32, zero mean and unit spread per image."""
    x = batch.float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)  # a blank image stays blank instead of exploding
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def to_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    arrays = np.stack([to_grey_array(im, size) for im in images])
    return standardise(torch.from_numpy(arrays)[:, None])
