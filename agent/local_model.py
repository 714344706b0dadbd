"""A model folder run in this process with transformers (CPU by default): the agent's model without a server.

Slow next to vLLM (no batching, no paged attention) and meant for one user on a workstation, or for tests. Torch
and transformers are imported on first use, so configuring this backend costs nothing until a question needs it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vesalius.agent.errors import ModelServerError
from vesalius.agent.vlm_client import ModelReply

_REMEDY = "Set VESALIUS_VLM_MODEL_DIR to a downloaded image-text model folder (config.json, weights, processor)"
_OOM_REMEDY = "Free memory, use a smaller model, or serve it with vLLM and set VESALIUS_VLM_URL instead"


class LocalModel:
    def __init__(self, model_dir: str | Path, name: str | None = None):
        self.model_dir = Path(model_dir)
        self._name = name
        self._lock = threading.Lock()  # one generate at a time: the model's buffers are not shared safely
        self._processor: Any = None
        self._model: Any = None

    @property
    def model(self) -> str:
        return self._name or self.model_dir.name

    def close(self) -> None:
        with self._lock:
            self._processor = self._model = None

    def chat(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float = 0.0,
        on_token: Callable[[str], None] | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ModelReply:
        """The model's reply, greedy at temperature 0; with `on_token`, each piece of text as it is decoded.

        `json_schema` is accepted for the same surface as the server client but not enforced: transformers has no
        constrained decoding here, so the reply is generated as usual and the caller validates it (and falls back
        when it is not JSON of that schema)."""
        converted = [_message(m) for m in messages]
        with self._lock:
            processor, model = self._load()
            try:
                return self._generate(processor, model, converted, max_tokens, temperature, on_token)
            except ModelServerError:
                raise
            except Exception as exc:  # a failing local model degrades like a failing server
                raise _failed("run", self.model_dir, exc) from exc

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._processor, self._model
        _check_folder(self.model_dir)
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a bar on stderr would break the CLI's one-line-per-message output
        try:
            processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(self.model_dir, local_files_only=True, dtype="auto")
        except Exception as exc:  # missing weights, a damaged file, a missing package
            raise _failed("load", self.model_dir, exc) from exc
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        model.eval()
        self._processor, self._model = processor, model
        return processor, model

    def _generate(
        self,
        processor: Any,
        model: Any,
        messages: list[dict[str, Any]],
        max_tokens: int,
        temperature: float,
        on_token: Callable[[str], None] | None,
    ) -> ModelReply:
        import torch

        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(model.device, dtype=model.dtype)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            options["temperature"] = temperature
        else:  # the folder's sampling defaults (MedGemma ships top_k, top_p) would only draw warnings
            options |= {"top_k": None, "top_p": None, "temperature": None}
        if on_token is None:
            with torch.inference_mode():
                output = model.generate(**inputs, **options)
            new = output[0][prompt_tokens:]
            text = processor.decode(new, skip_special_tokens=True)
        else:
            new, text = _streamed(processor, model, inputs, options, on_token)
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ids = new.tolist()
        stopped = bool(ids) and ids[-1] in eos_ids
        return ModelReply(
            text=text,
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(ids),
            finish_reason="length" if len(ids) >= max_tokens and not stopped else "stop",
        )


def _streamed(
    processor: Any, model: Any, inputs: Any, options: dict[str, Any], on_token: Callable[[str], None]
) -> tuple[Any, str]:
    """Generate in a worker thread while this one hands the text to `on_token`: the caller's context (LangGraph's
    stream writer) lives in this thread."""
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.inference_mode():
                result["output"] = model.generate(**inputs, **options, streamer=streamer)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            result["error"] = exc
            streamer.end()  # else the loop below waits for text forever

    worker = threading.Thread(target=run, name="vesalius-generate", daemon=True)
    worker.start()
    pieces: list[str] = []
    for piece in streamer:
        if piece:
            pieces.append(piece)
            on_token(piece)
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["output"][0][inputs["input_ids"].shape[1] :], "".join(pieces)


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message in the form a processor's chat template takes: images as PIL images."""
    content = message.get("content")
    if isinstance(content, str):
        return {"role": message["role"], "content": [{"type": "text", "text": content}]}
    parts: list[dict[str, Any]] = []
    for part in content or []:
        if part.get("type") == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            parts.append({"type": "image", "image": _data_url_image(part["image_url"]["url"])})
        else:
            raise ModelServerError(
                f"the local model cannot take a {part.get('type')!r} message part", "Send text and image_url parts"
            )
    return {"role": message["role"], "content": parts}


def _data_url_image(url: str) -> Image.Image:
    head, _, data = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise ModelServerError(
            f"the local model takes images only as base64 data: URLs, not {url[:40]!r}",
            "Send the image inline (vesalius.agent.vlm_client.image_part)",
        )
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise ModelServerError("an image sent to the local model cannot be decoded", "Send a PNG data URL") from exc
    return image.convert("RGB")


def _check_folder(folder: Path) -> None:
    """The mistakes a user makes in VESALIUS_VLM_MODEL_DIR, said before transformers says them less clearly."""
    if not folder.is_dir():
        raise ModelServerError(f"the model folder {folder} does not exist", _REMEDY)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelServerError(f"{folder} is not a model folder (it has no config.json)", _REMEDY)
    try:
        config = json.loads(config_file.read_text())
        model_type = str(config.get("model_type", "?"))
        architectures = ", ".join(config.get("architectures") or []) or model_type
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelServerError(f"the config.json in {folder} cannot be read", _REMEDY) from exc
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ModelServerError(
            f"the model in {folder} ({architectures}) cannot take images",
            "Use an image-text model such as MedGemma (Gemma3ForConditionalGeneration)",
        )


def _failed(doing: str, folder: Path, exc: Exception) -> ModelServerError:
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and _is_oom(exc)):
        return ModelServerError(f"not enough memory to {doing} the model in {folder}", _OOM_REMEDY)
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    remedy = _REMEDY if doing == "load" else "Check that the folder's model and processor belong together"
    return ModelServerError(f"cannot {doing} the model in {folder} ({type(exc).__name__}: {detail})", remedy)


def _is_oom(exc: RuntimeError) -> bool:
    # torch.OutOfMemoryError (CUDA) is a RuntimeError; the CPU allocator says so only in its message.
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text
