"""Search a built knowledge base: concept linking, dense (FAISS) and lexical (BM25) retrieval, and their fusion.

Ranking in the default mode ("linked"): concepts whose name, synonym or abbreviation is written out in the text come
first; the rest follow by reciprocal-rank fusion of the dense and the lexical ranking (each list contributes
1 / (RRF_K + rank)). Scores are in the output so that a caller can set its own bar.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from retrieval import vectors
from retrieval.build import BuildOptions, build, current_build
from retrieval.concepts import Concept
from retrieval.embedder import Embedder
from retrieval.errors import KnowledgeError
from retrieval.lexical import LexicalIndex
from retrieval.store import ConceptStore
from retrieval.terms import needs_capitals, spans

Mode = Literal["linked", "hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("linked", "hybrid", "dense", "lexical")
RRF_K = 60  # the usual constant: damps the difference between rank 1 and rank 2 of a single list
_KIND_ORDER = {"name": 0, "synonym": 1, "abbreviation": 2}


@dataclass(frozen=True)
class Link:
    """A concept found in a text: where, as which term, and how."""

    concept: Concept
    start: int
    end: int
    text: str  # as written in the text
    term: str  # the knowledge base's term it matched (for a dense link: the closest term)
    method: Literal["exact", "synonym", "abbreviation", "dense"]
    score: float  # 1.0 for a term written out; the cosine similarity for a dense link


@dataclass(frozen=True)
class Hit:
    concept: Concept
    score: float  # linked: 1 + fused score when a term is written out; fused: RRF of both ranks scaled to [0, 1]
    dense: float | None  # cosine similarity of the closest embedded term or definition
    lexical: float | None  # BM25 score
    dense_rank: int | None
    lexical_rank: int | None
    matched_term: str | None  # the term written out in the text, if any


class KnowledgeBase:
    def __init__(self, path: Path, embedder: Embedder | None = None):
        self.path = path
        try:
            self.manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise KnowledgeError(
                f"{path} is not a complete knowledge base (no readable manifest.json)",
                "Build one with `vesalius kb build`; a build still in progress is never opened",
            ) from exc
        self.store = ConceptStore(path / "concepts.sqlite")
        self.embedder = embedder or Embedder(Path(self.manifest["embedding_model"]["path"]))
        if self.embedder.model_id != self.manifest["embedding_model"]["id"]:
            raise KnowledgeError(
                f"the knowledge base {path.name} was built with the embedding model "
                f"{self.manifest['embedding_model']['id']}, not {self.embedder.model_id}",
                "Rebuild it with `vesalius kb build` using this embedding model, or unset VESALIUS_EMBEDDING_MODEL",
            )

    @classmethod
    def open(
        cls,
        root: Path,
        imaging_path: Path | None = None,
        embedding_model: Path | None = None,
        progress: bool = False,
    ) -> KnowledgeBase:
        """The base in use under `root` (a build directory or a root with CURRENT).

        With no build there, or with a replacement imaging knowledge file, the starter base (imaging knowledge only)
        is built first: it takes seconds, and `vesalius kb build` adds the bundled ontologies.
        """
        if (root / "manifest.json").exists():
            return cls(root, Embedder(embedding_model) if embedding_model else None)
        path = None if imaging_path else current_build(root)
        if path is None:
            print(
                "vesalius: building the starter knowledge base (imaging knowledge only); "
                "`vesalius kb build` adds HPO, ICD-10-CM and your ontologies",
                file=sys.stderr,
            )
            path = build(root, BuildOptions.starter(imaging_path, embedding_model), progress=progress).path
        return cls(path, Embedder(embedding_model) if embedding_model else None)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def source_names(self) -> list[str]:
        return list(self.manifest["sources"])

    @cached_property
    def _dense(self) -> tuple[object, vectors.IndexPlan, np.ndarray]:
        index, plan = vectors.load(self.path / "dense")
        return index, plan, np.load(self.path / "dense_rows.npy")

    @cached_property
    def _lexical(self) -> LexicalIndex:
        return LexicalIndex.load(self.path / "lexical")

    def __len__(self) -> int:
        return len(self.store)

    def concept(self, code: str) -> Concept | None:
        found = self.store.find(code)
        return self.store.get(found[0]) if found else None

    # -- the three rankings -------------------------------------------------------------------------------------

    def exact(self, text: str) -> list[tuple[int, int, int, str, str]]:
        """Terms written out in the text: (position, start, end, term, kind), longest non-overlapping first."""
        by_norm: dict[str, list[tuple[int, str, str]]] = {}
        candidates = spans(text)
        for norm, pos, term, kind in self.store.terms_in(n for _, _, n in candidates):
            by_norm.setdefault(norm, []).append((pos, term, kind))
        found = []
        for start, end, norm in candidates:
            written = text[start:end]
            for pos, term, kind in by_norm.get(norm, []):
                if needs_capitals(term) and not written.isupper():
                    continue
                found.append((end - start, start, end, pos, term, kind))
        found.sort(key=lambda f: (-f[0], f[1], _KIND_ORDER[f[5]], f[3]))
        taken: list[tuple[int, int]] = []
        out = []
        for _, start, end, pos, term, kind in found:
            if any(start < e and s < end for s, e in taken if (s, e) != (start, end)):
                continue
            if (start, end) not in taken:
                taken.append((start, end))
            out.append((pos, start, end, term, kind))
        return out

    def _query_vector(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])

    def dense(self, text: str, k: int, vector: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(position, cosine) of the concepts with the closest embedded texts, best first."""
        index, plan, owners = self._dense
        vector = self._query_vector(text) if vector is None else vector
        scores, rows = vectors.search(index, plan, vector, k * 4)  # several rows per concept
        best: dict[int, float] = {}
        for score, row in zip(scores[0], rows[0]):
            if row >= 0:
                pos = int(owners[row])
                best[pos] = max(best.get(pos, -1.0), float(score))
        return sorted(best.items(), key=lambda kv: -kv[1])[:k]

    def lexical(self, text: str, k: int) -> list[tuple[int, float]]:
        positions, scores = self._lexical.search(text, k)
        return [(int(p), float(s)) for p, s in zip(positions, scores)]

    # -- what callers use ---------------------------------------------------------------------------------------

    def search(
        self,
        text: str,
        k: int = 10,
        mode: Mode = "linked",
        semantic_types: list[str] | None = None,
        sources: list[str] | None = None,
    ) -> list[Hit]:
        if mode not in MODES:
            raise KnowledgeError(f"unknown search mode {mode!r}", f"Use one of {', '.join(MODES)}")
        if not text.strip():
            return []
        pool = 500 if semantic_types or sources else max(50, 5 * k)
        dense = self.dense(text, pool) if mode != "lexical" else []
        lexical = self.lexical(text, pool) if mode != "dense" else []
        exact = {}
        if mode == "linked":
            for pos, _, _, term, _ in self.exact(text):
                exact.setdefault(pos, term)
        d_rank = {pos: r for r, (pos, _) in enumerate(dense, start=1)}
        l_rank = {pos: r for r, (pos, _) in enumerate(lexical, start=1)}
        d_score, l_score = dict(dense), dict(lexical)

        def fused(pos: int) -> float:
            if mode == "dense":
                return d_score[pos]
            if mode == "lexical":
                return l_score[pos]
            rrf = sum(1 / (RRF_K + r[pos]) for r in (d_rank, l_rank) if pos in r)
            return rrf * (RRF_K + 1) / 2 + (1.0 if pos in exact else 0.0)

        candidates = sorted(set(d_rank) | set(l_rank) | set(exact), key=lambda p: (-fused(p), p))
        candidates = self._filtered(candidates, semantic_types, sources)[:k]
        concepts = self.store.many(candidates)
        return [
            Hit(
                concept=concepts[p],
                score=round(fused(p), 6),
                dense=d_score.get(p),
                lexical=l_score.get(p),
                dense_rank=d_rank.get(p),
                lexical_rank=l_rank.get(p),
                matched_term=exact.get(p),
            )
            for p in candidates
        ]

    def _filtered(self, positions: list[int], semantic_types: list[str] | None, sources: list[str] | None) -> list[int]:
        if not semantic_types and not sources:
            return positions
        wanted_types = {t.lower() for t in semantic_types or []}
        wanted_sources = {s.lower() for s in sources or []}
        facets = self.store.facets(positions)
        keep = []
        for p in positions:
            types, srcs = facets.get(p, (set(), set()))
            if wanted_types and not wanted_types & {t.lower() for t in types}:
                continue
            if wanted_sources and not wanted_sources & {s.lower() for s in srcs}:
                continue
            keep.append(p)
        return keep

    def link(self, text: str, dense_fallback: bool = True, min_dense: float = 0.7) -> list[Link]:
        """The concepts a text names: terms written out (exact, synonym, abbreviation); else its closest concept."""
        links, seen_spans = [], set()
        exact = self.exact(text)
        concepts = self.store.many(p for p, *_ in exact)
        for pos, start, end, term, kind in exact:
            if (start, end) in seen_spans:  # one concept per span: the best (the list is in preference order)
                continue
            seen_spans.add((start, end))
            method = "exact" if kind == "name" else kind
            links.append(Link(concepts[pos], start, end, text[start:end], term, method, 1.0))
        if links or not dense_fallback or not text.strip():
            return sorted(links, key=lambda link: link.start)
        best = self.dense(text, 1)
        if best and best[0][1] >= min_dense:
            c = self.store.get(best[0][0])
            return [Link(c, 0, len(text), text, c.preferred_name, "dense", round(best[0][1], 4))]
        return []

    def close(self) -> None:
        self.store.close()
