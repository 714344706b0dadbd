"""UMLS Rich Release Format files: pipe-separated rows with a trailing pipe, grouped by concept (CUI).

The Metathesaurus files are sorted by their first column, so a release can be joined file to file one concept at a
time (`Cursor`) instead of loading tens of millions of rows into dictionaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Problems
from vesalius.retrieval.sources.textio import read_lines

_CUI = re.compile(r"C\d{7}")


@dataclass(frozen=True)
class RrfLayout:
    """A file's columns, as the UMLS Reference Manual lists them (section 3.3, "Metathesaurus files")."""

    name: str  # "MRCONSO"
    header: str  # the column names joined by "|", as MRFILES.RRF gives them
    cui_columns: tuple[str, ...]  # must hold a CUI (C + 7 digits)
    nonempty_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.header.split("|"))

    def index(self, column: str) -> int:
        return self.columns.index(column)


Row = list[str]


def rows(path: Path, layout: RrfLayout, problems: Problems) -> Iterator[tuple[int, Row]]:
    """(line number, fields) for each well-formed row; malformed rows go to `problems`."""
    expected = len(layout.columns)
    cui_at = [(c, layout.index(c)) for c in layout.cui_columns]
    nonempty_at = [(c, layout.index(c)) for c in layout.nonempty_columns]
    for line_no, line in read_lines(path, problems):
        if not line:
            continue
        fields = line.split("|")
        # Every row ends with a pipe, so splitting gives one empty field more than there are columns.
        if len(fields) != expected + 1 or fields[-1]:
            problems.report(
                path, line_no, f"{len(fields) - 1} pipe-terminated fields where {layout.name} has {expected}"
            )
            continue
        bad = next((f"{c} {fields[i]!r} is not a CUI" for c, i in cui_at if not _CUI.fullmatch(fields[i])), None)
        bad = bad or next((f"{c} is empty" for c, i in nonempty_at if not fields[i].strip()), None)
        if bad:
            problems.report(path, line_no, bad)
            continue
        yield line_no, fields


def grouped(path: Path, numbered_rows: Iterator[tuple[int, Row]]) -> Iterator[tuple[str, list[Row]]]:
    """Consecutive rows with the same first field (the CUI) as one group; stop if the file is not sorted."""
    cui: str | None = None
    group: list[Row] = []
    for line_no, fields in numbered_rows:
        if fields[0] != cui:
            if cui is not None:
                if fields[0] < cui:
                    raise _unsorted(path, line_no, fields[0], cui)
                yield cui, group
            cui, group = fields[0], []
        group.append(fields)
    if cui is not None:
        yield cui, group


def _unsorted(path: Path, line_no: int, cui: str, previous: str) -> KnowledgeError:
    return KnowledgeError(
        f"{path}:{line_no}: {cui} comes after {previous}, so the file is not sorted by its first column (CUI); "
        "the loader joins the UMLS files concept by concept and needs them sorted as NLM ships them",
        f"Sort it by CUI, keeping each concept's rows in order: LC_ALL=C sort -s -t'|' -k1,1 {path.name} > "
        f"{path.name}.sorted && mv {path.name}.sorted {path.name}",
    )


class Cursor:
    """A grouped file read in step with MRCONSO: `take(cui)` returns that CUI's rows, skipping CUIs before it."""

    def __init__(self, groups: Iterator[tuple[str, list[Row]]]):
        self._groups = groups
        self._head = next(groups, None)

    def take(self, cui: str) -> list[Row]:
        while self._head is not None and self._head[0] < cui:
            self._head = next(self._groups, None)
        if self._head is not None and self._head[0] == cui:
            found = self._head[1]
            self._head = next(self._groups, None)
            return found
        return []
