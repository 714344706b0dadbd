"""What a shipped model is: its card (data, recipe, calibration, metrics, intended use) beside its weights.

A bundle is two files in one folder: NAME.json (the card, human-readable) and NAME.safetensors (float16 network
tensors: half the bytes of float32, and these small nets lose nothing measurable at that precision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.store import WEIGHTS_DIR  # noqa: F401 - where callers have always found it


class Calibration(BaseModel):
    method: Literal["temperature", "platt", "none"]
    temperature: float = 1.0
    platt_a: float = 1.0
    platt_b: float = 0.0


class Card(BaseModel):
    name: str
    version: str
    kind: Literal["classifier", "anomaly", "gate", "vqa"]
    task: str
    classes: list[str]
    positive_class: str | None = None
    net: dict[str, int] = Field(default_factory=dict)
    backbone: str | None = Field(None, description="the bundle whose network an anomaly model reads features from")
    calibration: Calibration = Calibration(method="none")
    threshold: float | None = Field(None, description="operating point: probability (classifiers) or score (anomaly)")
    operating_point: str | None = Field(None, description="how the threshold was chosen")
    extra: dict[str, Any] = Field(default_factory=dict, description="model-specific constants (e.g. score quantiles)")
    metrics: dict[str, Any] = Field(default_factory=dict, description="measured on validation, see metrics_split")
    metrics_split: str = ""
    data: str = ""
    licence: str = ""
    recipe: dict[str, Any] = Field(default_factory=dict)
    intended_use: str = ""
    limitations: list[str] = Field(default_factory=list)
    plots: list[str] = Field(default_factory=list)


# Statistics (a precision matrix) rather than weights: three significant digits would change what they measure.
_FULL_PRECISION = ("population.",)


def save_bundle(directory: Path, card: Card, tensors: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    half = {
        k: (v.half() if v.is_floating_point() and not k.startswith(_FULL_PRECISION) else v).contiguous()
        for k, v in tensors.items()
    }
    # Written under temporary names and renamed, so an interrupted `vesalius train` never leaves half a bundle.
    tmp_weights, tmp_card = directory / f".{card.name}.safetensors.tmp", directory / f".{card.name}.json.tmp"
    save_file(half, str(tmp_weights), metadata={"name": card.name, "version": card.version})
    tmp_card.write_text(card.model_dump_json(indent=2) + "\n")
    tmp_weights.replace(directory / f"{card.name}.safetensors")
    tmp_card.replace(directory / f"{card.name}.json")
    return directory / f"{card.name}.json"


def load_bundle(directory: Path, name: str) -> tuple[Card, dict[str, torch.Tensor]]:
    card_path, weights_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not card_path.exists() or not weights_path.exists():
        raise ModelWeightsError(
            f"the model '{name}' is not in {directory}",
            "Reinstall Vesalius, or rebuild it with `vesalius train " + name + "`",
        )
    try:
        card = Card.model_validate(json.loads(card_path.read_text()))
        tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(weights_path)).items()}
    except (ValueError, OSError, SafetensorError) as exc:
        raise ModelWeightsError(
            f"the model '{name}' in {directory} is damaged ({exc})", f"Rebuild it with `vesalius train {name}`"
        ) from exc
    return card, tensors
