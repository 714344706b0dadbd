"""What the multimodal model is asked in model mode, whichever engine answers: fixed text per kind of question,
hashed into the manifest, and the image as Vesalius reads it, encoded once per image within bounds.

Sampling is greedy (temperature 0) with a fixed seed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vesalius.eval.items import EvalItem, question_text

INSTRUCTIONS = {
    "closed": "Answer yes or no.",
    "open": "Answer the question using a single word or phrase.",
    "choice": "Answer with the letter of the correct option only.",
    "label": "Answer with one of: {classes}.",
}
IMAGE_MAX_SIDE = 896  # MedGemma's input resolution
SEED = 0
MAX_ANSWER_CHARS = 2000
# Benchmarks ask several questions about one image (VQA-RAD: 3,064 questions on 315 images): each image is read and
# encoded once, within these bounds.
IMAGE_CACHE_ENTRIES, IMAGE_CACHE_BYTES = 64, 256 * 2**20


def prompt(item: EvalItem) -> str:
    instruction = INSTRUCTIONS[item.kind].format(classes=", ".join(item.classes))
    return f"{question_text(item, 'What does this image show?')}\n{instruction}"


def prompt_digest() -> str:
    return hashlib.sha256(repr(sorted(INSTRUCTIONS.items())).encode() + prompt.__code__.co_code).hexdigest()[:16]


def _image_part(path: Path) -> dict[str, Any]:
    """The image as the agent would send it: read by Vesalius's own ingestion (any format it reads, bounded and
    de-identified), shrunk to the model's input side, sent losslessly."""
    from vesalius.agent.vlm_client import image_part
    from vesalius.vision import load_study

    image = load_study(path).image.convert("RGB")
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    return image_part(image)


class ImageParts:
    """Encoded images by file (path, size, modification time), least recently used let go first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, path: Path) -> dict[str, Any]:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            if (part := self._parts.get(key)) is not None:
                self._parts.move_to_end(key)
                return part
        part = _image_part(path)
        with self._lock:
            self._parts[key] = part
            size = lambda p: len(p["image_url"]["url"])
            while len(self._parts) > IMAGE_CACHE_ENTRIES or sum(map(size, self._parts.values())) > IMAGE_CACHE_BYTES:
                self._parts.popitem(last=False)
        return part


def messages(item: EvalItem, images: ImageParts) -> list[dict[str, Any]]:
    """One user turn: the image (if any), then the prompt. Raises when the image cannot be read."""
    content: list[dict[str, Any]] = []
    if item.image is not None:
        content.append(images.get(item.image))
    content.append({"type": "text", "text": prompt(item)})
    return [{"role": "user", "content": content}]


def describe(model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "prompt_sha256": prompt_digest(),
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": SEED,
        "image_max_side": IMAGE_MAX_SIDE,
    }
