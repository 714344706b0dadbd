"""Model mode over servers: the multimodal model alone, asked through OpenAI-compatible servers (vLLM), several
questions at once and round-robin over every `--model-url`, which is how a run scales out over GPUs each running
vLLM. A request that fails moves to the next server and is retried; a question that fails on every try is
recorded with its error and scored wrong, and the run goes on.

Prompts are fixed text, hashed into the manifest: the question, its options or context, and one instruction per
kind of question. Sampling is greedy (temperature 0) with a fixed seed.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem
from vesalius.eval.runner import Prediction

INSTRUCTIONS = {
    "closed": "Answer yes or no.",
    "open": "Answer the question using a single word or phrase.",
    "choice": "Answer with the letter of the correct option only.",
    "label": "Answer with one of: {classes}.",
}
IMAGE_MAX_SIDE = 896  # MedGemma's input resolution
SEED = 0
_MAX_ANSWER_CHARS = 2000
# Benchmarks ask several questions about one image (VQA-RAD: 3,064 questions on 315 images): each image is read and
# encoded once, within these bounds.
IMAGE_CACHE_ENTRIES, IMAGE_CACHE_BYTES = 64, 256 * 2**20


def prompt(item: EvalItem) -> str:
    parts = []
    if item.context:
        parts.append(f"Context: {item.context}")
    parts.append(item.question or "What does this image show?")
    parts += [f"{letter}. {text}" for letter, text in item.options.items()]
    parts.append(INSTRUCTIONS[item.kind].format(classes=", ".join(item.classes)))
    return "\n".join(parts)


def prompt_digest() -> str:
    return hashlib.sha256(repr(sorted(INSTRUCTIONS.items())).encode() + prompt.__code__.co_code).hexdigest()[:16]


def _image_part(path) -> dict[str, Any]:
    """The image as the agent would send it: read by Vesalius's own ingestion (any format it reads, bounded and
    de-identified), shrunk to the model's input side, sent losslessly."""
    from vesalius.agent.vlm_client import image_part
    from vesalius.vision import load_study

    image = load_study(path).image.convert("RGB")
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    return image_part(image)


def _base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchmarkError(
            f"--model-url {url!r} is not an http(s) URL", "Give the server's base URL, e.g. http://127.0.0.1:8000/v1"
        )
    from vesalius.agent.vlm_client import openai_base

    return openai_base(url)


class ServerPredictor:
    name = "model"

    def __init__(
        self,
        urls: list[str],
        model: str | None = None,
        *,
        max_tokens: int = 32,
        timeout_s: float = 300.0,
        retries: int = 2,
    ):
        import httpx

        if not urls:
            raise BenchmarkError("model mode needs a model server", "Give --model-url URL (one per server)")
        self.urls = [_base(u) for u in urls]
        self.clients = [httpx.Client(base_url=u, timeout=timeout_s) for u in self.urls]
        self.max_tokens, self.retries = max_tokens, retries
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._images: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
        self.model = model or self._served_model()

    def _served_model(self) -> str:
        import httpx

        try:
            listed = self.clients[0].get("/models").raise_for_status().json()["data"]
            return str(listed[0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise BenchmarkError(
                f"cannot list the models of {self.urls[0]} ({type(exc).__name__}: {exc})",
                "Check that the server is running, or name the model with --model-name",
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "model",
            "model": self.model,
            "servers": len(self.urls),
            "prompt_sha256": prompt_digest(),
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": SEED,
            "image_max_side": IMAGE_MAX_SIDE,
        }

    def _next_client(self):
        with self._lock:
            return self.clients[next(self._turn) % len(self.clients)]

    def predict(self, item: EvalItem) -> Prediction:
        import httpx

        content: list[dict[str, Any]] = []
        if item.image is not None:
            try:
                content.append(self._image(item.image))
            except Exception as exc:  # noqa: BLE001 - a StudyError or worse: this question cannot be asked
                return Prediction(text=None, error=f"the image could not be read: {exc}")
        content.append({"type": "text", "text": prompt(item)})
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": SEED,
        }
        problem = ""
        for attempt in range(self.retries + 1):
            client = self._next_client()
            try:
                data = client.post("/chat/completions", json=body).raise_for_status().json()
                text = str(data["choices"][0]["message"]["content"] or "")[:_MAX_ANSWER_CHARS]
                usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
                return Prediction(text=text.strip(), source=self.model, full_answer=text, tokens=usage)
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                problem = f"{client.base_url}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                time.sleep(min(0.5 * 2**attempt, 5.0))
        return Prediction(text=None, error=f"no answer after {self.retries + 1} tries ({problem})")

    def _image(self, path: Path) -> dict[str, Any]:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            if (part := self._images.get(key)) is not None:
                self._images.move_to_end(key)
                return part
        part = _image_part(path)
        with self._lock:
            self._images[key] = part
            size = lambda p: len(p["image_url"]["url"])
            while len(self._images) > IMAGE_CACHE_ENTRIES or sum(map(size, self._images.values())) > IMAGE_CACHE_BYTES:
                self._images.popitem(last=False)
        return part

    def close(self) -> None:
        for client in self.clients:
            client.close()
