"""The UMLS Metathesaurus (the user's own licensed release): one SourceConcept per CUI with a kept atom.

MRCONSO.RRF is required; MRDEF.RRF (definitions), MRSTY.RRF (semantic types) and MRREL.RRF (parents and finding
sites) are used when present. The four files are read together in one pass, concept by concept, so memory stays
small whatever the release's size (MRCONSO alone has ~17M rows).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Problems, Relation, SourceConcept
from vesalius.retrieval.sources.rrf import Cursor, Row, RrfLayout, grouped, rows

log = logging.getLogger(__name__)

LICENSE = "UMLS Metathesaurus License (user's own)"
UTS_LINK = "https://uts.nlm.nih.gov/uts/umls/concept/{}"  # the UMLS browser; it asks for the user's UTS login

# Column names as MRFILES.RRF lists them for each file (UMLS Reference Manual, section 3.3).
MRCONSO = RrfLayout(
    "MRCONSO",
    "CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF",
    cui_columns=("CUI",),
    nonempty_columns=("STR",),
)
MRDEF = RrfLayout("MRDEF", "CUI|AUI|ATUI|SATUI|SAB|DEF|SUPPRESS|CVF", ("CUI",), ("DEF",))
MRSTY = RrfLayout("MRSTY", "CUI|TUI|STN|STY|ATUI|CVF", ("CUI",), ("STY",))
MRREL = RrfLayout(
    "MRREL",
    "CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF",
    cui_columns=("CUI1", "CUI2"),
)

_C = {name: MRCONSO.index(name) for name in MRCONSO.columns}
_D = {name: MRDEF.index(name) for name in MRDEF.columns}
_S = {name: MRSTY.index(name) for name in MRSTY.columns}
_R = {name: MRREL.index(name) for name in MRREL.columns}
_RELEASE = re.compile(r"\d{4}A[A-Z]")
_ICD10CM_CODE = re.compile(r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?")


@dataclass(frozen=True)
class _Filters:
    languages: dict[str, int] | None  # language -> rank (earlier in the caller's list is preferred); None: all
    sources: frozenset[str] | None
    include_suppressed: bool

    def keep(self, sab: str, suppress: str) -> bool:
        # SUPPRESS: N = not suppressed; O = obsolete, E = suppressed by NLM editors, Y = suppressible by the source.
        return (self.sources is None or sab in self.sources) and (self.include_suppressed or suppress == "N")

    def language_ok(self, lat: str | None) -> bool:
        return self.languages is None or lat in self.languages


def load_umls(
    directory: Path,
    problems: Problems,
    languages: Iterable[str] | None = ("ENG",),
    sources: frozenset[str] | None = None,
    include_suppressed: bool = False,
    release: str | None = None,
) -> Iterator[SourceConcept]:
    """Stream the concepts of the UMLS release whose META folder is `directory`.

    Atoms are kept when their language (LAT) is in `languages` (None: every language), their vocabulary (SAB) is in
    `sources` (None: every vocabulary; the filter also applies to definitions and relations) and they are not
    suppressed (SUPPRESS "N") unless `include_suppressed`. A CUI with no kept atom is not yielded.
    The files must be sorted by CUI as NLM ships them; an unsorted file raises KnowledgeError saying how to sort it.
    """
    directory = Path(directory)
    files = {layout.name: _find(directory, layout.name) for layout in (MRCONSO, MRDEF, MRSTY, MRREL)}
    if files["MRCONSO"] is None:
        raise KnowledgeError(
            f"{directory} has no MRCONSO.RRF",
            "Give the META folder of a UMLS release installed with MetamorphoSys (it holds MRCONSO.RRF, MRDEF.RRF, "
            "MRSTY.RRF and MRREL.RRF); a downloaded release must be unpacked and installed first",
        )
    absent = [f"{name}.RRF" for name, path in files.items() if path is None]
    if absent:
        log.warning("UMLS %s: %s absent; concepts will lack what they hold", directory, ", ".join(absent))
    filters = _Filters(
        languages={lat: rank for rank, lat in enumerate(languages)} if languages is not None else None,
        sources=frozenset(sources) if sources is not None else None,
        include_suppressed=include_suppressed,
    )
    source = f"UMLS {release or _release(directory)}"
    return _concepts(files, problems, filters, source)


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.RRF", directory / f"{name}.RRF.gz"):
        if candidate.is_file():
            return candidate
    return None


def _release(directory: Path) -> str:
    """The release ("2025AA"): from release.dat (in META or the release folder above it), else the folder names."""
    for folder in (directory, directory.parent):
        dat = folder / "release.dat"
        if dat.is_file():
            for line in dat.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip().endswith("release.name") and value.strip():
                    return value.strip()
                if found := _RELEASE.search(line):
                    return found.group()
    for folder in (directory, directory.parent):
        if found := _RELEASE.search(folder.name):
            return found.group()
    name = directory.name if directory.name.upper() != "META" else directory.parent.name
    return name or "UMLS"


def _cursor(path: Path | None, layout: RrfLayout, problems: Problems) -> Cursor:
    return Cursor(grouped(path, rows(path, layout, problems)) if path else iter(()))


def _concepts(
    files: dict[str, Path | None], problems: Problems, filters: _Filters, source: str
) -> Iterator[SourceConcept]:
    conso_path = files["MRCONSO"]
    assert conso_path is not None
    definitions = _cursor(files["MRDEF"], MRDEF, problems)
    types = _cursor(files["MRSTY"], MRSTY, problems)
    relations = _cursor(files["MRREL"], MRREL, problems)
    for cui, atoms in grouped(conso_path, rows(conso_path, MRCONSO, problems)):
        kept = [a for a in atoms if filters.language_ok(a[_C["LAT"]]) and filters.keep(a[_C["SAB"]], a[_C["SUPPRESS"]])]
        if not kept:
            continue
        concept = _from_atoms(cui, kept, filters, source)
        # A definition's language is its atom's (MRDEF has no LAT column), looked up among all the concept's atoms.
        language_of = {a[_C["AUI"]]: a[_C["LAT"]] for a in atoms}
        for d in definitions.take(cui):
            text = d[_D["DEF"]].strip()
            if (
                filters.keep(d[_D["SAB"]], d[_D["SUPPRESS"]])
                and filters.language_ok(language_of.get(d[_D["AUI"]]))
                and all(text != known.text for known in concept.definitions)
            ):
                concept.definitions.append(Definition(text, f"{source} {d[_D['SAB']]}"))
        for t in types.take(cui):
            if t[_S["STY"]] not in concept.semantic_types:
                concept.semantic_types.append(t[_S["STY"]])
        # dict.fromkeys drops repeats (several vocabularies state the same parent) and keeps the first-seen order.
        found = (_relation(r, filters) for r in relations.take(cui))
        concept.relations = list(dict.fromkeys(r for r in found if r is not None and r.target != cui))
        yield concept


def _from_atoms(cui: str, atoms: list[Row], filters: _Filters, source: str) -> SourceConcept:
    name = _preferred(atoms, filters)[_C["STR"]]
    concept = SourceConcept(
        source=source, id=cui, name=name, umls_cuis=[cui], license=LICENSE, link=UTS_LINK.format(cui)
    )
    seen = {name.casefold()}
    for a in atoms:
        text, sab, code = a[_C["STR"]], a[_C["SAB"]], a[_C["CODE"]]
        if text.casefold() not in seen:
            seen.add(text.casefold())
            concept.synonyms.append(text)
        if sab.startswith("SNOMEDCT") and code.isdigit() and code not in concept.snomed_ct:
            concept.snomed_ct.append(code)
        # ICD10CM atoms include chapter and block headings ("J09-J18"); only codes are kept.
        elif sab == "ICD10CM" and _ICD10CM_CODE.fullmatch(code) and code not in concept.icd10cm:
            concept.icd10cm.append(code)
    return concept


def _preferred(atoms: list[Row], filters: _Filters) -> Row:
    """The concept's preferred atom (TS=P, STT=PF, ISPREF=Y) in the most preferred language, else the first atom."""
    preferred = [a for a in atoms if (a[_C["TS"]], a[_C["STT"]], a[_C["ISPREF"]]) == ("P", "PF", "Y")]
    if not preferred:
        return atoms[0]
    rank = filters.languages or {}
    return min(preferred, key=lambda a: rank.get(a[_C["LAT"]], len(rank)))


def _relation(r: Row, filters: _Filters) -> Relation | None:
    """The relation row `r` (read from CUI1's side) states about CUI1, if it is one the knowledge base uses.

    MRREL reads right to left: REL and RELA name the relationship of CUI2 to CUI1. So `C1|..|PAR|C2|..` says C2 is a
    parent of C1, and `C1|..|RO|C2|..|finding_site_of|` says C2 is the finding site of C1 (the disorder is CUI1).
    Every relationship is also present inverted (CHD / has_finding_site) under the other CUI's rows; those describe
    CUI2, and since the files are read one CUI1 at a time they are left to the row that describes CUI1 itself.
    """
    if not filters.keep(r[_R["SAB"]], r[_R["SUPPRESS"]]):
        return None
    if r[_R["REL"]] == "PAR":
        return Relation("is_a", r[_R["CUI2"]])
    if r[_R["RELA"]] == "finding_site_of":
        return Relation("finding_site", r[_R["CUI2"]])
    return None
