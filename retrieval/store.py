"""The concepts of one built knowledge base, in SQLite: by position, by identifier or code, and by term."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from vesalius.retrieval.concepts import Concept
from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.terms import is_abbreviation, linkable, normalize

SCHEMA = """
CREATE TABLE concepts (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, semantic_types TEXT, sources TEXT, data TEXT);
CREATE TABLE terms (norm TEXT NOT NULL, pos INTEGER NOT NULL, term TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE codes (code TEXT NOT NULL, pos INTEGER NOT NULL);
"""
INDEXES = """
CREATE INDEX terms_norm ON terms(norm);
CREATE INDEX codes_code ON codes(code);
"""


def _source_names(c: Concept) -> str:
    # "HPO 2025-01-16" -> "HPO": filters name a source, not a release
    return "|".join(sorted({ref.source.split(" ")[0] for ref in c.sources}))


def write_store(path: Path, concepts: Iterable[Concept]) -> int:
    """Writes the concepts in order (position = order); returns how many."""
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA)
        n = 0
        for pos, c in enumerate(concepts):
            db.execute(
                "INSERT INTO concepts VALUES (?, ?, ?, ?, ?)",
                (pos, c.id, "|".join(c.semantic_types), _source_names(c), c.model_dump_json(exclude_defaults=True)),
            )
            seen: set[str] = set()
            for i, term in enumerate(c.terms()):
                norm = normalize(term)
                if norm in seen or not linkable(term):
                    continue
                seen.add(norm)
                kind = "name" if i == 0 else "abbreviation" if is_abbreviation(term) else "synonym"
                db.execute("INSERT INTO terms VALUES (?, ?, ?, ?)", (norm, pos, term, kind))
            ids = {c.id, *c.codes, *(ref.id for ref in c.sources), *c.xrefs}
            db.executemany("INSERT INTO codes VALUES (?, ?)", [(code.upper(), pos) for code in ids])
            n = pos + 1
        db.executescript(INDEXES)
        db.commit()
        return n
    finally:
        db.close()


class ConceptStore:
    """Read-only access; concepts are parsed on demand, so opening a large base costs nothing."""

    def __init__(self, path: Path):
        if not path.exists():
            raise KnowledgeError(f"no concept store at {path}", "Rebuild the knowledge base with `vesalius kb build`")
        self.path = path
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            self.size = self._db.execute("SELECT count(*) FROM concepts").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise KnowledgeError(
                f"the concept store {path} is damaged ({exc})", "Rebuild it with `vesalius kb build --force`"
            ) from exc

    def __len__(self) -> int:
        return self.size

    def _rows_in(self, sql: str, values: Iterable) -> Iterator[tuple]:
        """Rows of `sql` (whose one "{}" is the IN list) for distinct values, 500 at a time (SQLite's limit)."""
        values = list(dict.fromkeys(values))
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            yield from self._db.execute(sql.format(",".join("?" * len(chunk))), chunk)

    def get(self, pos: int) -> Concept:
        row = self._db.execute("SELECT data FROM concepts WHERE pos = ?", (pos,)).fetchone()
        return Concept.model_validate_json(row[0])

    def all(self) -> Iterator[tuple[int, Concept]]:
        """Every concept in position order, in one pass over the table."""
        for pos, data in self._db.execute("SELECT pos, data FROM concepts ORDER BY pos"):
            yield pos, Concept.model_validate_json(data)

    def many(self, positions: Iterable[int]) -> dict[int, Concept]:
        rows = self._rows_in("SELECT pos, data FROM concepts WHERE pos IN ({})", (int(p) for p in positions))
        return {pos: Concept.model_validate_json(data) for pos, data in rows}

    def ids(self, positions: Iterable[int]) -> dict[int, str]:
        return dict(self._rows_in("SELECT pos, id FROM concepts WHERE pos IN ({})", positions))

    def facets(self, positions: Iterable[int]) -> dict[int, tuple[set[str], set[str]]]:
        """Semantic types and source names of each position, for filtering without parsing concepts."""
        rows = self._rows_in("SELECT pos, semantic_types, sources FROM concepts WHERE pos IN ({})", positions)
        return {pos: (set(filter(None, st.split("|"))), set(src.split("|"))) for pos, st, src in rows}

    def find(self, code: str) -> list[int]:
        """Positions of the concept with this id, CUI ("C0032285" or "UMLS:C0032285"), code or source id."""
        code = code.strip().upper()
        candidates = [code, f"UMLS:{code}"] if ":" not in code else [code]
        if code.isdigit():
            candidates.append(f"SCTID:{code}")
        return sorted({pos for (pos,) in self._rows_in("SELECT pos FROM codes WHERE code IN ({})", candidates)})

    def terms_in(self, norms: Iterable[str]) -> Iterator[tuple[str, int, str, str]]:
        """(normal form, position, term as written in the source, kind) for each normal form that is a term."""
        return self._rows_in("SELECT norm, pos, term, kind FROM terms WHERE norm IN ({})", norms)

    def close(self) -> None:
        self._db.close()
