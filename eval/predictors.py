"""Predictors that drive the agent: embedded (no model server) and agent (the whole agent with its model). Either
answers with the answer's short answer or not at all.

The evaluation drives Vesalius from outside, through `vesalius.Vesalius`, like any other user. Every question
opens a fresh conversation, so nothing one question said can leak into the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import threading
from pathlib import Path
from typing import Any

from vesalius import Settings, Vesalius, VesaliusError
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem, question_text
from vesalius.eval.runner import Prediction


def _bundles(models_dir: Path | None) -> dict[str, Path]:
    """Each model bundle the agent loads, by name, from where it loads it (`models_dir` over the shipped ones)."""
    from vesalius.vision.models.store import WEIGHTS_DIR, ModelStore

    store = ModelStore(models_dir)
    names = {p.stem for d in {WEIGHTS_DIR, store.directory} for p in d.glob("*.safetensors")}
    return {name: store.folder(name) for name in sorted(names)}


def _weights_digest(models_dir: Path | None) -> dict[str, str]:
    """The model files by content: a retrained model makes another run."""
    return {
        f"{name}.safetensors": hashlib.sha256((folder / f"{name}.safetensors").read_bytes()).hexdigest()[:16]
        for name, folder in _bundles(models_dir).items()
    }


def _trained_on(models_dir: Path | None) -> dict[str, str]:
    """What each model learnt from (its card's `data`): a run on those images is not held out."""
    return {
        name: str(json.loads((folder / f"{name}.json").read_text()).get("data", "?"))
        for name, folder in _bundles(models_dir).items()
    }


class EmbeddedPredictor:
    """The agent with no model server: its `short_answer` is the prediction; a question nothing here answers
    gets none, and is scored wrong rather than guessed."""

    name = "embedded"

    def __init__(self, settings: Settings, agent_data: Path):
        # The run's conversations go beside its results, not into the user's conversation store.
        self.vesalius = Vesalius(
            settings.model_copy(update={"vlm_url": None, "vlm_backend": "server", "data_dir": agent_data})
        )
        self.image_cache = agent_data / "images"

    def describe(self) -> dict[str, Any]:
        info = self.vesalius.knowledge_info()
        return {
            "mode": "embedded",
            "weights": _weights_digest(self.vesalius.settings.models_dir),
            "trained_on": _trained_on(self.vesalius.settings.models_dir),
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
        try:  # a text-only item (MedQA, PubMedQA) is a question without a study, answered from knowledge
            answer = self._ask(item)
        except VesaliusError as exc:
            return Prediction(text=None, error=exc.one_line())
        short, model = answer.short_answer, answer.model
        tokens = {"prompt_tokens": model.prompt_tokens, "completion_tokens": model.completion_tokens}
        return Prediction(
            text=short.text if short else None,
            probability=short.probability if short else None,
            source=short.source if short else None,
            full_answer=answer.answer,
            tokens={k: v for k, v in tokens.items() if v is not None},
        )

    def _ask(self, item: EvalItem):
        return self.vesalius.ask(question_text(item), study=item.image)

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


class AgentPredictor(EmbeddedPredictor):
    """The whole agent with its multimodal model: one Vesalius per `--model-url`, questions dealt round-robin, a
    question moving to the next server when its model server fails. The model is required: an answer composed
    without it would not measure the agent with its model, so a failure is recorded and scored wrong."""

    name = "agent"

    def __init__(self, settings: Settings, agent_data: Path, urls: list[str], model: str | None = None):
        import httpx

        from vesalius.eval.server_predictor import check_url, served_model

        if not urls:
            raise BenchmarkError(
                "agent mode needs a model server",
                "Give --model-url URL (a vLLM server with the model; repeat for more)",
            )
        urls = [check_url(u) for u in urls]
        if model is None:
            with httpx.Client(base_url=urls[0], timeout=30) as client:
                model = served_model(client)
        fixed = {
            "vlm_model": model,
            "require_model": True,
            "vlm_backend": "server",
            "data_dir": agent_data,
            "vlm_extra_body": {**settings.vlm_extra_body, "seed": 0},
        }
        self.pool = [Vesalius(Settings(**{**settings.model_dump(), **fixed, "vlm_url": url})) for url in urls]
        self.vesalius = self.pool[0]  # classification items and the manifest's description
        self.image_cache = agent_data / "images"
        self.model = model
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        from vesalius.agent.prompt import SYSTEM, build_messages

        template = SYSTEM.encode() + build_messages.__code__.co_code + repr(build_messages.__code__.co_consts).encode()
        s = self.vesalius.settings
        return {
            **super().describe(),
            "mode": "agent",
            "model": self.model,
            "prompt_sha256": hashlib.sha256(template).hexdigest()[:16],
            "settings": {
                "deid_dates": s.deid_dates,
                "top_k": s.top_k,
                "vlm_max_tokens": s.vlm_max_tokens,
                "vlm_image_max_side": s.vlm_image_max_side,
                "vlm_max_images": s.vlm_max_images,
                "temperature": 0,
                "seed": 0,
            },
        }

    def _ask(self, item: EvalItem):
        from vesalius.agent.errors import ModelServerError

        problem: VesaliusError | None = None
        for _ in self.pool:
            with self._lock:
                vesalius = self.pool[next(self._turn) % len(self.pool)]
            try:
                return vesalius.ask(question_text(item), study=item.image)
            except ModelServerError as exc:  # this server failed: the next one may not
                problem = exc
        assert problem is not None
        raise problem

    def close(self) -> None:
        for vesalius in self.pool:
            vesalius.close()
