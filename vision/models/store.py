"""Loads shipped models by name, once each, from the package's weights folder or a folder the user names."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, FAISS and SciPy load with the first model, not with the store
    from vesalius.vision.models.anomaly import AnomalyDetector
    from vesalius.vision.models.card import Card
    from vesalius.vision.models.classifier import CalibratedClassifier
    from vesalius.vision.models.gate import Gate
    from vesalius.vision.models.net import CompactResNet
    from vesalius.vision.models.population import PopulationCheck
    from vesalius.vision.models.vqa import VqaModel

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


class ModelStore:
    """One per agent or command (no module-level cache): `classifier`, `anomaly` and `gate` load on first use.

    A folder given (`models_dir`, e.g. the `--out` of `vesalius train`) replaces the shipped bundles it holds; the
    others still come from the package."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or WEIGHTS_DIR
        self._loaded: dict[str, object] = {}
        # Tools run in parallel and share models (chest_anomaly reads through the pneumonia network): one load each.
        self._lock = threading.RLock()

    def folder(self, name: str) -> Path:
        """Where the bundle `name` is read from."""
        return self.directory if (self.directory / f"{name}.json").exists() else WEIGHTS_DIR

    def network(self, name: str) -> tuple[Card, CompactResNet]:
        """A bundle's card and network, freshly loaded (classifier and gate keep theirs)."""
        card, net, _ = self._bundle(name)
        return card, net

    def _bundle(self, name: str) -> tuple[Card, CompactResNet, dict]:
        import torch

        from vesalius.vision.models.card import load_bundle
        from vesalius.vision.models.net import CompactResNet, NetConfig

        card, tensors = load_bundle(self.folder(name), name)
        net = CompactResNet(NetConfig(**card.net))
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        return card, net.eval().to(memory_format=torch.channels_last), tensors

    def classifier(self, name: str) -> CalibratedClassifier:
        with self._lock:
            if name not in self._loaded:
                from vesalius.vision.models.classifier import CalibratedClassifier

                card, net, tensors = self._bundle(name)
                self._loaded[name] = CalibratedClassifier(card, net, _population(card, net, tensors, self.folder(name)))
            return self._loaded[name]  # type: ignore[return-value]

    def gate(self, name: str = "modality_gate") -> Gate:
        with self._lock:
            if name not in self._loaded:
                from vesalius.vision.models.gate import Gate

                self._loaded[name] = Gate(*self.network(name))
            return self._loaded[name]  # type: ignore[return-value]

    def anomaly(self, name: str = "chest_anomaly") -> AnomalyDetector:
        with self._lock:
            if name not in self._loaded:
                from vesalius.vision.models.anomaly import AnomalyDetector
                from vesalius.vision.models.card import load_bundle

                card, tensors = load_bundle(self.folder(name), name)
                backbone = self.classifier(card.backbone).net if card.backbone else None
                self._loaded[name] = AnomalyDetector(card, backbone, tensors["memory"].numpy())
            return self._loaded[name]  # type: ignore[return-value]

    def vqa(self, name: str = "vqa") -> VqaModel:
        """The VQA model and the network it reads images with (its card's `backbone`, checked by content)."""
        with self._lock:
            if name not in self._loaded:
                from vesalius.vision.errors import ModelWeightsError
                from vesalius.vision.models.card import load_bundle
                from vesalius.vision.models.vqa import VqaModel

                card, tensors = load_bundle(self.folder(name), name)
                backbone_card, backbone = self.network(card.backbone or "modality_gate")
                gate_folder = self.folder(backbone_card.name)
                if card.extra.get("backbone_version") != _weights_digest(gate_folder, backbone_card.name):
                    raise ModelWeightsError(
                        f"the VQA model was trained on another {backbone_card.name} than the one in {gate_folder}",
                        "Rebuild it with `vesalius train vqa` after training the gate",
                    )
                self._loaded[name] = VqaModel(card, tensors, backbone)
            return self._loaded[name]  # type: ignore[return-value]


def _population(card: Card, net: CompactResNet, tensors: dict, folder: Path) -> PopulationCheck | None:
    """The bundle's population check, if its card promises one; a promised check that is damaged is an error, not
    a check silently skipped."""
    from vesalius.vision.errors import ModelWeightsError
    from vesalius.vision.models.population import PopulationCheck

    promised = card.extra.get("population")
    if promised is None:
        return None
    limit = promised.get("limit") if isinstance(promised, dict) else None
    width = 2 * sum(block.conv1.out_channels for block in net.stages)
    population = PopulationCheck.from_tensors(
        tensors, float(limit) if isinstance(limit, int | float) else float("nan"), width
    )
    if population is None:
        raise ModelWeightsError(
            f"the model '{card.name}' in {folder} has a damaged population check",
            f"Rebuild it with `vesalius train {card.name}`",
        )
    return population


def _weights_digest(directory: Path, name: str) -> str:
    import hashlib

    return hashlib.sha256((directory / f"{name}.safetensors").read_bytes()).hexdigest()[:16]
