"""Find the concepts a question or a finding is about: exact term matches first, then dense similarity."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.concepts import Concept, KnowledgeFile, load_knowledge
from retrieval.embedder import Embedder
from retrieval.index import ConceptIndex, load_or_build


@dataclass(frozen=True)
class Hit:
    concept: Concept
    score: float  # fused score in [0, 1+]: dense cosine, plus a bonus when a term of the concept is in the text
    dense_score: float
    matched_term: str | None  # the name or synonym found verbatim in the query, if any


def _term_pattern(term: str) -> re.Pattern[str]:
    """Whole-word match; case-insensitive except for abbreviations, so that "CAP" is not found in "knee cap"."""
    flags = 0 if term.isupper() else re.IGNORECASE
    return re.compile(rf"(?<![\w-]){re.escape(term)}(?![\w-])", flags)


class KnowledgeBase:
    """The bundled (or a user's) knowledge file, its FAISS index, and search over both."""

    EXACT_BONUS = 0.5  # a term written out in the question outranks any paraphrase match

    def __init__(self, kb: KnowledgeFile, index: ConceptIndex, embedder: Embedder):
        self.kb = kb
        self.index = index
        self.embedder = embedder
        self._term_patterns = [[(t, _term_pattern(t)) for t in c.terms()] for c in kb.concepts]

    @classmethod
    def open(
        cls, cache_dir: Path, knowledge_path: Path | None = None, embedding_model: Path | None = None
    ) -> KnowledgeBase:
        kb, digest = load_knowledge(knowledge_path)
        embedder = Embedder(embedding_model)
        return cls(kb, load_or_build(kb.concepts, digest, embedder, cache_dir), embedder)

    @property
    def source(self) -> str:
        return self.kb.source

    def exact_matches(self, text: str) -> dict[int, str]:
        """Concepts whose name or a synonym appears in `text` (whole words, case-insensitive)."""
        found = {}
        for i, patterns in enumerate(self._term_patterns):
            for term, pattern in patterns:
                if pattern.search(text):
                    found[i] = term
                    break
        return found

    def search(self, text: str, k: int = 5, min_score: float = 0.0) -> list[Hit]:
        exact = self.exact_matches(text)
        vectors = self.embedder.encode([text])
        scores, rows = self.index.search(vectors, k * 8)
        dense: dict[int, float] = {}
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            owner = int(self.index.owners[row])
            dense[owner] = max(dense.get(owner, -1.0), float(score))
        hits = []
        for i in set(dense) | set(exact):
            d = dense.get(i, 0.0)
            hits.append(Hit(self.kb.concepts[i], d + (self.EXACT_BONUS if i in exact else 0.0), d, exact.get(i)))
        hits.sort(key=lambda h: h.score, reverse=True)
        return [h for h in hits if h.score >= min_score][:k]
