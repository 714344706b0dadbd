"""The project's own compact CNN: a small ResNet for single-channel medical images.

Small on purpose: it trains from scratch on 2 CPU cores in minutes, and the weights of every shipped model fit in a
few megabytes. No pretrained weights are involved, so nothing is downloaded and nothing of unknown licence ships.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    width: int = 32  # channels of the first stage; later stages double it
    classes: int = 1  # 1: one logit for a binary task; C > 1: softmax over C classes
    input_size: int = 224
    stages: int = 4

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class CompactResNet(nn.Module):
    """stem (stride 2) then `stages` residual blocks of stride 2: a 224 px input gives 56, 28, 14 and 7 px maps."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 5, 2, 2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        widths = [w * 2**i for i in range(config.stages)]
        cins = [w, *widths[:-1]]
        self.stages = nn.ModuleList(_Block(cin, cout, 2) for cin, cout in zip(cins, widths, strict=True))
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(widths[-1], config.classes)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, finest first: what anomaly detection and heatmaps read."""
        maps = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head, from the last stage averaged over the image."""
        logits = self.head(self.dropout(pooled))
        return logits.squeeze(1) if self.config.classes == 1 else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.feature_maps(x)[-1].mean(dim=(2, 3)))
