"""Search a built knowledge base: concept linking, dense (FAISS) and lexical (BM25) retrieval, and their fusion.

Ranking in the default mode ("linked"): concepts whose name, synonym or abbreviation is written out in the text come
first (then those written out once misspelt words are corrected); the rest follow by reciprocal-rank fusion of the
dense and the lexical ranking (each list contributes 1 / (RRF_K + rank)). Lexical, hybrid and linked search use the
spelling-corrected query; dense mode alone embeds the text as typed. Scores are in the output so that a caller can
set its own bar.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vesalius.retrieval.choices import MODES, Mode
from vesalius.retrieval.concepts import Concept
from vesalius.retrieval.embedder import Embedder
from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.store import ConceptStore

if TYPE_CHECKING:  # FAISS and bm25s load with the first search that needs them, not to look up a code
    from vesalius.retrieval.lexical import LexicalIndex
    from vesalius.retrieval.vectors import IndexPlan

from vesalius.retrieval.terms import needs_capitals, spans, stopwords, word_spans

RRF_K = 60  # the usual constant: damps the difference between rank 1 and rank 2 of a single list
WEIGHTS = {"dense": 1.0, "lexical": 0.08}  # BM25 is weak on lay words; dev recall@1 0.69 at 0.25, 0.74 at 0.08
CORRECTED = 0.9  # a term found after spelling correction counts a little less than one written out
CUI_PREFERENCE = 0.05  # breaks ties between concepts named by the same term, never outweighs a rank
_KIND_ORDER = {"name": 0, "synonym": 1, "abbreviation": 2}


@dataclass(frozen=True)
class Link:
    """A concept found in a text: where, as which term, and how."""

    concept: Concept
    start: int
    end: int
    text: str  # as written in the text
    term: str  # the knowledge base's term it matched (for a dense link: the closest term)
    method: Literal["exact", "synonym", "abbreviation", "spelling", "dense"]
    score: float  # 1.0 for a term written out, 0.5 for one found after spelling correction, a cosine for dense


@dataclass(frozen=True)
class Hit:
    concept: Concept
    score: float  # hybrid: weighted RRF scaled to [0, 1]; linked: plus up to 1.05 for a term written out; else raw
    dense: float | None  # cosine similarity of the closest embedded term or definition
    lexical: float | None  # BM25 score
    dense_rank: int | None
    lexical_rank: int | None
    matched_term: str | None  # the term written out in the text, if any
    corrected: str | None = None  # the query after spelling correction, when it was corrected


def is_cui(concept_id: str) -> bool:
    return len(concept_id) == 8 and concept_id[0] == "C" and concept_id[1:].isdigit()


def coverage(text: str, start: int, end: int) -> float:
    """The share of the text's content words (not "is", "the", "there") that lie in [start, end).

    Squared where it is used: "hernia" alone in "belly button hernia" (1/3) must not outrank what the whole phrase
    means, while "pleural effusion" in "Is there a pleural effusion on this CT?" (2/3) still leads."""
    words = [(s, e) for s, e in word_spans(text) if text[s:e].lower() not in stopwords()]
    inside = sum(start <= s and e <= end for s, e in words)
    return inside / len(words) if words else 1.0


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
        built_with = self.manifest["embedding_model"]["path"]
        self.embedder = embedder or Embedder(Path(built_with) if built_with else None)
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
        from vesalius.retrieval.build import BuildOptions, build, current_build

        if (root / "manifest.json").exists():
            return cls(root, Embedder(embedding_model) if embedding_model else None)
        path = None if imaging_path else current_build(root)
        if path is None:
            report = build(root, BuildOptions.starter(imaging_path, embedding_model), progress=progress)
            if not report.reused:
                print(
                    f"vesalius: built the starter knowledge base ({report.concepts} concepts of imaging knowledge) "
                    f"in {report.seconds:.0f} s; `vesalius kb build` adds HPO, ICD-10-CM and your ontologies",
                    file=sys.stderr,
                )
            path = report.path
        return cls(path, Embedder(embedding_model) if embedding_model else None)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def source_names(self) -> list[str]:
        return list(self.manifest["sources"])

    @cached_property
    def _dense(self) -> tuple[object, IndexPlan, np.ndarray]:
        from vesalius.retrieval import vectors

        index, plan = vectors.load(self.path / "dense")
        return index, plan, np.load(self.path / "dense_rows.npy")

    @cached_property
    def _lexical(self) -> LexicalIndex:
        from vesalius.retrieval.lexical import LexicalIndex

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

    def corrected(self, text: str) -> str | None:
        """The text with misspelt words corrected, or None. Of the speller's readings, the one whose written-out terms
        cover most of the text wins (the first on a tie): "asites" reads as "ascites", a concept, not as "sites"."""
        readings = self._lexical.speller.corrections(text)
        if len(readings) < 2:
            return readings[0] if readings else None

        def covered(reading: str) -> float:
            spans = {(start, end) for _, start, end, _, _ in self.exact(reading)}
            return sum(coverage(reading, start, end) for start, end in spans)

        return max(readings, key=covered)  # max keeps the first of equals

    def _query_vector(self, text: str) -> np.ndarray:
        return self.embedder.encode([text])

    def dense(self, text: str, k: int, vector: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(position, cosine) of the concepts with the closest embedded texts, best first."""
        index, plan, owners = self._dense
        vector = self._query_vector(text) if vector is None else vector
        from vesalius.retrieval import vectors

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
        corrected = self.corrected(text) if mode != "dense" else None
        query = corrected or text
        dense = self.dense(query, pool) if mode != "lexical" else []
        lexical = self.lexical(query, pool) if mode != "dense" else []
        exact: dict[int, str] = {}
        bonus: dict[int, float] = {}
        if mode == "linked":
            # A term written out counts by the share of the query's words it accounts for.
            for pos, start, end, term, _ in self.exact(text):
                exact.setdefault(pos, term)
                bonus[pos] = max(bonus.get(pos, 0.0), coverage(text, start, end) ** 2)
            for pos, start, end, _, _ in self.exact(corrected) if corrected else []:
                bonus.setdefault(pos, CORRECTED * coverage(corrected, start, end) ** 2)
            # When one term names several concepts, the one with a UMLS CUI first: it is the one other systems
            # code with, and it gathers every source's definitions.
            for pos, concept_id in self.store.ids(list(bonus)).items():
                if is_cui(concept_id):
                    bonus[pos] += CUI_PREFERENCE
        d_rank = {pos: r for r, (pos, _) in enumerate(dense, start=1)}
        l_rank = {pos: r for r, (pos, _) in enumerate(lexical, start=1)}
        d_score, l_score = dict(dense), dict(lexical)

        def fused(pos: int) -> float:
            if mode == "dense":
                return d_score[pos]
            if mode == "lexical":
                return l_score[pos]
            rrf = sum(
                WEIGHTS[name] / (RRF_K + r[pos]) for name, r in (("dense", d_rank), ("lexical", l_rank)) if pos in r
            )
            return rrf * (RRF_K + 1) / sum(WEIGHTS.values()) + bonus.get(pos, 0.0)

        candidates = sorted(set(d_rank) | set(l_rank) | set(bonus), key=lambda p: (-fused(p), p))
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
                corrected=corrected,
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

    def link(self, text: str, fallback: bool = True, min_dense: float = 0.7) -> list[Link]:
        """The concepts a text names: terms written out (exact, synonym, abbreviation). With `fallback`, when none
        is: the terms found once misspelt words are corrected, else the closest concept by meaning."""
        links, seen_spans = [], set()
        exact = self.exact(text)
        concepts = self.store.many(p for p, *_ in exact)
        for pos, start, end, term, kind in exact:
            if (start, end) in seen_spans:  # one concept per span: the best (the list is in preference order)
                continue
            seen_spans.add((start, end))
            method = "exact" if kind == "name" else kind
            links.append(Link(concepts[pos], start, end, text[start:end], term, method, 1.0))
        if links or not fallback or not text.strip():
            return sorted(links, key=lambda link: link.start)
        corrected = self.corrected(text)
        if corrected:
            # Correction changes words one for one, so the n-th word of the corrected text is the n-th word typed.
            typed, fixed = word_spans(text), word_spans(corrected)
            word_at = {start: i for i, (start, _) in enumerate(fixed)} | {end: i for i, (_, end) in enumerate(fixed)}
            found = self.exact(corrected)
            concepts = self.store.many(p for p, *_ in found)
            for pos, start, end, term, _ in found:
                first, last = typed[word_at[start]][0], typed[word_at[end]][1]
                if (first, last) not in seen_spans:
                    seen_spans.add((first, last))
                    links.append(Link(concepts[pos], first, last, text[first:last], term, "spelling", 0.5))
        if links:
            return sorted(links, key=lambda link: link.start)
        best = self.dense(text, 1)
        if best and best[0][1] >= min_dense:
            c = self.store.get(best[0][0])
            return [Link(c, 0, len(text), text, c.preferred_name, "dense", round(best[0][1], 4))]
        return []

    def close(self) -> None:
        self.store.close()
