"""Predictors: what answers a benchmark item. The embedded agent answers with its short answer or not at all.

The evaluation drives Vesalius from outside, through `vesalius.Vesalius`, like any other user. Every question
opens a fresh conversation, so nothing one question said can leak into the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from vesalius import Settings, Vesalius, VesaliusError
from vesalius.eval.items import EvalItem
from vesalius.eval.runner import Prediction


def _weights_digest() -> dict[str, str]:
    """The shipped model files by content: a retrained model makes another run."""
    from vesalius.vision.models.store import WEIGHTS_DIR

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def _trained_on() -> dict[str, str]:
    """What each shipped model learnt from (its card's `data`): a run on those images is not held out."""
    from vesalius.vision.models.store import WEIGHTS_DIR

    return {p.stem: str(json.loads(p.read_text()).get("data", "?")) for p in sorted(WEIGHTS_DIR.glob("*.json"))}


class EmbeddedPredictor:
    """The agent with no model server: its `short_answer` is the prediction; a question nothing here answers
    gets none, and is scored wrong rather than guessed."""

    name = "embedded"

    def __init__(self, settings: Settings, agent_data: Path):
        # The run's conversations go beside its results, not into the user's conversation store.
        self.vesalius = Vesalius(settings.model_copy(update={"vlm_url": None, "data_dir": agent_data}))
        self.image_cache = agent_data / "images"

    def describe(self) -> dict[str, Any]:
        info = self.vesalius.knowledge_info()
        return {
            "mode": "embedded",
            "weights": _weights_digest(),
            "trained_on": _trained_on(),
            "knowledge_base": info["version"],
            "tools": sorted(t.name for t in self.vesalius.tools()),
            "settings": {"deid_dates": self.vesalius.settings.deid_dates, "top_k": self.vesalius.settings.top_k},
        }

    def predict(self, item: EvalItem) -> Prediction:
        if item.array is not None:  # MedMNIST: the image lives inside the npz; written once as a PNG
            from vesalius.eval.loaders.medmnist import image_png

            item = dataclasses.replace(item, image=image_png(item.array, self.image_cache))
        if item.kind == "label":
            return self._classify(item)
        if item.image is None:
            return Prediction(text=None, error="no image: the embedded agent answers questions about a study")
        try:
            answer = self.vesalius.ask(item.question, study=item.image)
        except VesaliusError as exc:
            return Prediction(text=None, error=exc.one_line())
        short = answer.short_answer
        return Prediction(
            text=short.text if short else None,
            probability=short.probability if short else None,
            source=short.source if short else None,
            full_answer=answer.answer,
        )

    def _classify(self, item: EvalItem) -> Prediction:
        """A class-folder or MedMNIST item: the trained model whose positive class is one of the item's classes,
        at its card's threshold. The modality gate decides first, as for any study: where it keeps every model
        away, the item is not covered (no prediction, scored wrong, counted in `coverage`)."""
        (record,) = self.vesalius.classify([item.image])
        if record.error:
            return Prediction(text=None, error=record.error)
        names = {c.lower(): c for c in item.classes}
        for tool, probs in record.probabilities.items():
            if len(probs) != 1 or len(item.classes) != 2 or probs[0].label.lower() not in names:
                continue
            p = probs[0]
            positive = names[p.label.lower()]
            negative = next(c for c in item.classes if c != positive)
            return Prediction(
                text=positive if p.above_threshold else negative,
                probability=p.probability,
                source=tool,
                class_probabilities={positive: p.probability, negative: round(1 - p.probability, 6)},
            )
        why = "; ".join(f"{tool}: {reason}" for tool, reason in record.not_applied.items())
        return Prediction(
            text=None, error=f"no trained model read it ({record.kind.described() if record.kind else '?'}; {why})"
        )

    def close(self) -> None:
        self.vesalius.close()
