"""A small client for an OpenAI-compatible chat server (vLLM's, by default) that sends images as content parts.

vLLM turns each `image_url` part into the model's image tokens inside the prompt; the reply's `usage` counts them.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from PIL import Image
from pydantic import BaseModel

from vesalius.agent.errors import ModelServerError


class ModelReply(BaseModel):
    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    prompt_token_ids: list[int] | None = None  # vLLM returns them when asked ("return_token_ids": true)


def image_part(image: Image.Image) -> dict[str, Any]:
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # lossless: JPEG artefacts would be new "findings"
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def openai_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class VlmClient:
    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ):
        self.base = openai_base(url)
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))
        self._model = model

    def close(self) -> None:
        self._http.close()

    @property
    def model(self) -> str:
        if self._model is None:
            data = self._request("GET", "/models")
            models = [m.get("id") for m in data.get("data", []) if m.get("id")]
            if not models:
                raise ModelServerError(f"the model server at {self.base} lists no models", "Start it with --model DIR")
            self._model = models[0]
        return self._model

    def chat(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
    ) -> ModelReply:
        """The model's reply; with `on_token`, streamed, and each piece of text passed to it as it arrives."""
        body = {
            **self.extra_body,
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if on_token is not None:
            return self._streamed(body, on_token)
        data = self._request("POST", "/chat/completions", json=body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelServerError(
                f"the model server at {self.base} sent a reply without a message",
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
        usage: dict[str, Any] = {}
        model, finish = self.model, None
        with self._calling(), self._http.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise self._refused(response)
            for line in response.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                try:
                    chunk = json.loads(line[5:])
                    choices = chunk.get("choices") or []
                    delta = choices[0].get("delta") or {} if choices else {}
                except (ValueError, AttributeError, IndexError) as exc:
                    raise ModelServerError(
                        f"the model server at {self.base} streamed something that is not a chat chunk",
                        "Check that it is an OpenAI-compatible server",
                    ) from exc
                if piece := delta.get("content"):
                    pieces.append(piece)
                    on_token(piece)
                if choices and choices[0].get("finish_reason"):
                    finish = choices[0]["finish_reason"]
                usage = chunk.get("usage") or usage
                model = str(chunk.get("model") or model)
        return ModelReply(
            text="".join(pieces),
            model=model,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=finish,
        )

    @contextmanager
    def _calling(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ModelServerError(
                f"the model server at {self.base} did not answer in time",
                "Raise VESALIUS_VLM_TIMEOUT_S or check the server's load",
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelServerError(
                f"cannot reach the model server at {self.base} ({type(exc).__name__})",
                "Start the vLLM server, or unset VESALIUS_VLM_URL to answer from the tools alone",
            ) from exc

    def _refused(self, response: httpx.Response) -> ModelServerError:
        detail = _error_detail(response)
        remedy = "Check VESALIUS_VLM_MODEL and the server's log"
        if "context length" in detail or "max_model_len" in detail or "maximum" in detail:
            remedy = "Start the server with a larger --max-model-len, or lower VESALIUS_VLM_MAX_TOKENS"
        return ModelServerError(f"the model server answered HTTP {response.status_code}: {detail}", remedy)

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._calling():
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._refused(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ModelServerError(
                f"the model server at {self.base} did not answer with JSON", "Check VESALIUS_VLM_URL"
            ) from exc


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
        err = data.get("error", data)
        message = err.get("message") if isinstance(err, dict) else str(err)
    except ValueError:
        message = response.text
    return " ".join(str(message or response.reason_phrase).split())[:300]
