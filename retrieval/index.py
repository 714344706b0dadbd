"""A FAISS index over the concepts' names, synonyms and definitions, built on first use and cached on disk.

The cache key is the knowledge file's digest plus the embedding model's id, so editing either rebuilds it.
Builds are written to a temporary folder and renamed into place: a half-written index is never read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from retrieval.concepts import Concept
from retrieval.embedder import Embedder
from retrieval.errors import KnowledgeError

INDEX_FORMAT = 1


@dataclass(frozen=True)
class ConceptIndex:
    index: faiss.Index
    owners: np.ndarray  # row -> concept position: each concept has several rows (name, synonyms, definition)
    path: Path

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(query_vectors, min(k, self.index.ntotal))


def index_texts(concepts: list[Concept]) -> tuple[list[str], list[int]]:
    texts, owners = [], []
    for i, c in enumerate(concepts):
        for text in (*c.terms(), f"{c.preferred_name}: {c.definition}"):
            texts.append(text)
            owners.append(i)
    return texts, owners


def load_or_build(concepts: list[Concept], kb_digest: str, embedder: Embedder, cache_dir: Path) -> ConceptIndex:
    key = f"{kb_digest[:16]}-{embedder.model_id}-v{INDEX_FORMAT}"
    path = cache_dir / "index" / key
    if (path / "index.faiss").exists():
        try:
            return ConceptIndex(faiss.read_index(str(path / "index.faiss")), np.load(path / "owners.npy"), path)
        except (RuntimeError, OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)  # damaged from outside (a disk error, a hand edit): rebuild it
    texts, owners = index_texts(concepts)
    print(f"vesalius: building the knowledge index ({len(concepts)} concepts, {len(texts)} texts) ...", file=sys.stderr)
    vectors = embedder.encode(texts, progress=sys.stderr.isatty())
    # Exact inner product: at a few thousand vectors a flat index is both fastest and exact.
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _write_atomically(path, index, owners, {"kb_digest": kb_digest, "model": embedder.model_id, "rows": len(texts)})
    return ConceptIndex(index, np.asarray(owners, dtype=np.int64), path)


def _write_atomically(path: Path, index: faiss.Index, owners: list[int], meta: dict) -> None:
    unwritable = KnowledgeError(
        f"cannot write the knowledge index under {path.parent}",
        "Point the cache directory (cache_dir) to a writable folder",
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise unwritable from exc
    try:
        faiss.write_index(index, str(tmp / "index.faiss"))
        np.save(tmp / "owners.npy", np.asarray(owners, dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # faiss reports I/O failures as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        if not (path / "index.faiss").exists():  # another process may have won the race; theirs is as good
            raise unwritable from exc
