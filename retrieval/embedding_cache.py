"""Vectors of texts an embedding model has already embedded, so that a rebuild embeds only what is new.

Adding a UMLS release to a base, or fixing one source, leaves most names and definitions unchanged; embedding is
the slow stage of a build (about 100k texts take minutes on two cores). One SQLite file per model, keyed by a
digest of the text.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np


def _key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    def __init__(self, directory: Path, model_id: str):
        directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / f"{model_id}.sqlite")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    def get(self, texts: list[str]) -> list[np.ndarray | None]:
        keys = [_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return [found.get(k) for k in keys]

    def put(self, texts: list[str], vectors: np.ndarray) -> None:
        rows = [(_key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
        self._db.commit()

    def close(self) -> None:
        self._db.close()
