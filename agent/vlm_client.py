"""A small client for OpenAI-compatible chat servers (vLLM's, by default) that sends images as content parts.

vLLM turns each `image_url` part into the model's image tokens inside the prompt; the reply's `usage` counts them.
A busy or restarting server is retried with back-off, and with several URLs the client fails over to the next.
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel

from vesalius.agent.errors import ModelServerError

# Statuses a server answers while overloaded, restarting or behind a proxy whose upstream is down: worth another try.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0  # a server asking for longer would hold the user's question hostage
MAX_BACKOFF_S = 60.0

_T = TypeVar("_T")


class ModelReply(BaseModel):
    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    prompt_token_ids: list[int] | None = None  # vLLM returns them when asked ("return_token_ids": true)


class ChatModel(Protocol):
    """What the agent asks of a model backend: this server client, or `local_model.LocalModel`."""

    @property
    def model(self) -> str: ...

    def chat(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ModelReply: ...

    def close(self) -> None: ...


def image_part(image: Image.Image) -> dict[str, Any]:
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # lossless: JPEG artefacts would be new "findings"
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def openai_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def split_urls(urls: str) -> list[str]:
    return [u.strip() for u in urls.split(",") if u.strip()]


class _Retryable(Exception):
    """One attempt failed in a way another attempt (or another server) may not."""

    def __init__(self, error: ModelServerError, retry_after: float | None = None):
        super().__init__(error.problem)
        self.error, self.retry_after = error, retry_after


class VlmClient:
    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        extra_body: dict[str, Any] | None = None,
        retries: int = 2,
        backoff_s: float = 0.5,
    ):
        self.bases = [openai_base(u) for u in split_urls(url)]
        if not self.bases:
            raise ModelServerError("no model server URL given", "Set VESALIUS_VLM_URL")
        self.extra_body = dict(extra_body or {})
        self.retries, self.backoff_s = retries, backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))
        self._model = model
        self._preferred = 0  # the server that answered last; the agent's threads share it
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        """The server in use: the one that answered last."""
        return self.bases[self._preferred]

    def close(self) -> None:
        self._http.close()

    @property
    def model(self) -> str:
        if self._model is None:
            data = self._call(lambda base: self._json(base, "GET", "/models"))
            models = [m.get("id") for m in data.get("data", []) if isinstance(m, dict) and m.get("id")]
            if not models:
                raise ModelServerError(f"the model server at {self.base} lists no models", "Start it with --model DIR")
            self._model = str(models[0])
        return self._model

    def chat(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ModelReply:
        """The model's reply; with `on_token`, streamed, and each piece of text passed to it as it arrives. With
        `json_schema`, the server constrains the reply to JSON of that schema (vLLM's structured outputs)."""
        body = {
            **self.extra_body,
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if json_schema is not None:
            # vLLM's structured outputs. Without whitespace: under a JSON grammar a weak model can pad with
            # newlines until max_tokens and never close the object.
            body["structured_outputs"] = {"json": json_schema, "disable_any_whitespace": True}
        if on_token is not None:
            return self._streamed(body, on_token)
        data, base = self._call(lambda base: (self._json(base, "POST", "/chat/completions", json=body), base))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelServerError(
                f"the model server at {base} sent a reply without a message",
                "Check that it is an OpenAI-compatible server",
            ) from exc
        usage = data.get("usage") or {}
        return ModelReply(
            text=text,
            model=str(data.get("model") or self.model),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            prompt_token_ids=data.get("prompt_token_ids"),
        )

    def _streamed(self, body: dict[str, Any], on_token: Callable[[str], None]) -> ModelReply:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        model = self.model

        def attempt(base: str) -> ModelReply:
            try:
                return self._stream_once(base, body, model, pieces, on_token)
            except _Retryable as exc:
                if pieces:  # the user has seen part of this answer: another attempt would repeat it
                    raise exc.error from exc
                raise

        return self._call(attempt)

    def _stream_once(
        self, base: str, body: dict[str, Any], model: str, pieces: list[str], on_token: Callable[[str], None]
    ) -> ModelReply:
        usage: dict[str, Any] = {}
        finish = None
        try:
            with self._http.stream("POST", base + "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refused(base, response)
                for line in response.iter_lines():
                    if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                        continue
                    chunk, delta, choices = _chunk(base, line)
                    if piece := delta.get("content"):
                        pieces.append(piece)
                        on_token(piece)
                    if choices and choices[0].get("finish_reason"):
                        finish = choices[0]["finish_reason"]
                    usage = chunk.get("usage") or usage
                    model = str(chunk.get("model") or model)
        except httpx.HTTPError as exc:
            raise _unreachable(base, exc) from exc
        return ModelReply(
            text="".join(pieces),
            model=model,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=finish,
        )

    def _json(self, base: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, base + path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(base, exc) from exc
        if response.status_code >= 400:
            raise _refused(base, response)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ModelServerError(f"the model server at {base} did not answer with JSON", "Check VESALIUS_VLM_URL")
        return data

    def _call(self, attempt: Callable[[str], _T]) -> _T:
        """`attempt` at the server in use, then at the others in order, for up to 1 + retries rounds with a pause
        between rounds; the server that answers becomes the one in use."""
        failed: dict[str, ModelServerError] = {}
        attempts = 0
        for round_ in range(self.retries + 1):
            start = self._preferred
            waits: list[float] = []
            for i in [*range(start, len(self.bases)), *range(start)]:
                base = self.bases[i]
                attempts += 1
                try:
                    result = attempt(base)
                except _Retryable as exc:
                    failed[base] = exc.error
                    if exc.retry_after is not None:
                        waits.append(exc.retry_after)
                    continue
                with self._lock:
                    self._preferred = i
                return result
            if round_ < self.retries:
                time.sleep(self._pause(round_, waits))
        raise _gave_up(failed, attempts)

    def _pause(self, round_: int, retry_after: list[float]) -> float:
        # Jitter keeps the agent's threads from hammering a recovering server in step.
        pause = min(self.backoff_s * 2**round_, MAX_BACKOFF_S) * random.uniform(0.5, 1.0)
        if retry_after:
            pause = max(pause, min(max(retry_after), MAX_RETRY_AFTER_S))
        return pause


def _unreachable(base: str, exc: httpx.HTTPError) -> _Retryable:
    if isinstance(exc, httpx.TimeoutException):
        return _Retryable(
            ModelServerError(
                f"the model server at {base} did not answer in time",
                "Raise VESALIUS_VLM_TIMEOUT_S or check the server's load",
            )
        )
    return _Retryable(
        ModelServerError(
            f"cannot reach the model server at {base} ({type(exc).__name__})",
            "Start the vLLM server, or unset VESALIUS_VLM_URL to answer from the tools alone",
        )
    )


def _refused(base: str, response: httpx.Response) -> ModelServerError | _Retryable:
    detail = _error_detail(response)
    remedy = "Check VESALIUS_VLM_MODEL and the server's log"
    if "context length" in detail or "max_model_len" in detail or "maximum" in detail:
        remedy = "Start the server with a larger --max-model-len, or lower VESALIUS_VLM_MAX_TOKENS"
    error = ModelServerError(f"the model server at {base} answered HTTP {response.status_code}: {detail}", remedy)
    if response.status_code in RETRY_STATUSES:
        return _Retryable(error, _retry_after(response))
    return error


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # an HTTP date, or nothing: the client's own back-off applies
    return seconds if 0 <= seconds < float("inf") else None


def _gave_up(failed: dict[str, ModelServerError], attempts: int) -> ModelServerError:
    last = list(failed.values())[-1]
    problem = "; ".join(error.problem for error in failed.values())
    tries = "attempt" if attempts == 1 else "attempts"
    return ModelServerError(f"{problem} ({attempts} {tries})", last.remedy)


def _chunk(base: str, line: str) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    try:
        chunk = json.loads(line[5:])
        choices = chunk.get("choices") or []
        delta = choices[0].get("delta") or {} if choices else {}
        return chunk, dict(delta), list(choices)
    except (ValueError, AttributeError, IndexError, TypeError) as exc:
        raise ModelServerError(
            f"the model server at {base} streamed something that is not a chat chunk",
            "Check that it is an OpenAI-compatible server",
        ) from exc


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
        err = data.get("error", data)
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(str(message or response.reason_phrase).split())[:300]
