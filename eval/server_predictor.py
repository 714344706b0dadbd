"""Model mode over servers: the multimodal model alone, asked through OpenAI-compatible servers (vLLM), several
questions at once and round-robin over every `--model-url`, which is how a run scales out over GPUs each running
vLLM. A request that fails moves to the next server and is retried; a question that fails on every try is
recorded with its error and scored wrong, and the run goes on. The prompt is `vesalius.eval.model_prompt`'s.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from vesalius.eval import model_prompt
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem
from vesalius.eval.runner import Prediction


def check_url(url: str) -> str:
    """A `--model-url` as the OpenAI-compatible base URL, or one line saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchmarkError(
            f"--model-url {url!r} is not an http(s) URL", "Give the server's base URL, e.g. http://127.0.0.1:8000/v1"
        )
    from vesalius.agent.vlm_client import openai_base

    return openai_base(url)


def served_model(client) -> str:
    """The first model an OpenAI-compatible server lists (an httpx.Client on its base URL)."""
    import httpx

    try:
        listed = client.get("/models").raise_for_status().json()["data"]
        return str(listed[0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BenchmarkError(
            f"cannot list the models of {client.base_url} ({type(exc).__name__}: {exc})",
            "Check that the server is running, or name the model with --model-name",
        ) from exc


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
        self.urls = [check_url(u) for u in urls]
        self.clients = [httpx.Client(base_url=u, timeout=timeout_s) for u in self.urls]
        self.max_tokens, self.retries = max_tokens, retries
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.images = model_prompt.ImageParts()
        self.model = model or served_model(self.clients[0])

    def describe(self) -> dict[str, Any]:
        return {"mode": "model", "engine": "server", **model_prompt.describe(self.model, self.max_tokens)}

    def _next_client(self):
        with self._lock:
            return self.clients[next(self._turn) % len(self.clients)]

    def predict(self, item: EvalItem) -> Prediction:
        import httpx

        try:
            messages = model_prompt.messages(item, self.images)
        except Exception as exc:  # noqa: BLE001 - a StudyError or worse: this question cannot be asked
            return Prediction(text=None, error=f"the image could not be read: {exc}")
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": model_prompt.SEED,
        }
        problem = ""
        for attempt in range(self.retries + 1):
            client = self._next_client()
            try:
                data = client.post("/chat/completions", json=body).raise_for_status().json()
                text = str(data["choices"][0]["message"]["content"] or "")[: model_prompt.MAX_ANSWER_CHARS]
                usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
                return Prediction(text=text.strip(), source=self.model, full_answer=text, tokens=usage)
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                problem = f"{client.base_url}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                time.sleep(min(0.5 * 2**attempt, 5.0))
        return Prediction(text=None, error=f"no answer after {self.retries + 1} tries ({problem})")

    def close(self) -> None:
        for client in self.clients:
            client.close()
