"""Predictors: what answers a benchmark item. The embedded agent answers with its short answer or not at all.

The evaluation drives Vesalius from outside, through `vesalius.Vesalius`, like any other user. Every question
opens a fresh conversation, so nothing one question said can leak into the next.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vesalius import Settings, Vesalius, VesaliusError
from vesalius.eval.items import EvalItem
from vesalius.eval.runner import Prediction


def _weights_digest() -> dict[str, str]:
    """The shipped model files by content: a retrained model makes another run."""
    from vesalius.vision.models.store import WEIGHTS_DIR

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


class EmbeddedPredictor:
    """The agent with no model server: its `short_answer` is the prediction; a question nothing here answers
    gets none, and is scored wrong rather than guessed."""

    name = "embedded"

    def __init__(self, settings: Settings, agent_data: Path):
        # The run's conversations go beside its results, not into the user's conversation store.
        self.vesalius = Vesalius(settings.model_copy(update={"vlm_url": None, "data_dir": agent_data}))

    def describe(self) -> dict[str, Any]:
        info = self.vesalius.knowledge_info()
        return {
            "mode": "embedded",
            "weights": _weights_digest(),
            "knowledge_base": info["version"],
            "tools": sorted(t.name for t in self.vesalius.tools()),
            "settings": {"deid_dates": self.vesalius.settings.deid_dates, "top_k": self.vesalius.settings.top_k},
        }

    def predict(self, item: EvalItem) -> Prediction:
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

    def close(self) -> None:
        self.vesalius.close()
