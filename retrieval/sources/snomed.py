"""A SNOMED CT RF2 Snapshot (the user's own licensed release): one SourceConcept per active concept.

RF2 files are not grouped by concept (descriptions and relationships are sorted by their own ids), so this loader
keeps per-concept dictionaries: for the International Edition (~370k concepts, ~1.6M descriptions) that is a few
hundred MB, read once per build.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Problems, Relation, SourceConcept
from vesalius.retrieval.sources.textio import read_lines

log = logging.getLogger(__name__)

LICENSE = "SNOMED CT Affiliate Licence (user's own)"
LINK = "http://snomed.info/id/{}"

CONCEPT_COLUMNS = ("id", "effectiveTime", "active", "moduleId", "definitionStatusId")
DESCRIPTION_COLUMNS = (
    "id", "effectiveTime", "active", "moduleId", "conceptId", "languageCode", "typeId", "term", "caseSignificanceId"
)  # fmt: skip
RELATIONSHIP_COLUMNS = (
    "id", "effectiveTime", "active", "moduleId", "sourceId", "destinationId", "relationshipGroup", "typeId",
    "characteristicTypeId", "modifierId",
)  # fmt: skip
LANGUAGE_COLUMNS = ("id", "effectiveTime", "active", "moduleId", "refsetId", "referencedComponentId", "acceptabilityId")

# Metadata concepts the release files refer to (SNOMED CT Release File Specifications, "Metadata Hierarchy").
FSN = "900000000000003001"  # Fully specified name
SYNONYM = "900000000000013009"
DEFINITION = "900000000000550004"
PREFERRED = "900000000000548007"
ACCEPTABLE = "900000000000549004"
US_ENGLISH = "900000000000509007"  # language reference set
INFERRED = "900000000000011006"  # characteristic type: what the classifier concluded, the full set of parents
RELATION_KINDS = {"116680003": "is_a", "363698007": "finding_site"}  # Is a, Finding site

_RELEASE = re.compile(r"_([A-Za-z0-9]+)_(\d{8})\.txt$")
_SEMANTIC_TAG = re.compile(r"(.*\S)\s*\(([^()]+)\)")


@dataclass
class _Names:
    fsn: dict[str, str] = field(default_factory=dict)
    preferred: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    def name(self, concept_id: str) -> str | None:
        if concept_id in self.preferred:
            return self.preferred[concept_id]
        fsn = self.fsn.get(concept_id)
        return _split_tag(fsn)[0] if fsn else None


@dataclass(frozen=True)
class _Files:
    concepts: Path
    descriptions: list[Path]
    definitions: list[Path]
    relationships: list[Path]
    language: list[Path]


def load_snomed(
    directory: Path,
    problems: Problems,
    release: str | None = None,
    language_code: str = "en",
    language_refset: str = US_ENGLISH,
) -> Iterator[SourceConcept]:
    """Stream the active concepts of the RF2 Snapshot under `directory` (searched recursively).

    Needs sct2_Concept_Snapshot*.txt and sct2_Description_Snapshot*.txt; uses sct2_TextDefinition_Snapshot*,
    sct2_Relationship_Snapshot* and der2_cRefset_Language*Snapshot* when present. A concept's name is its preferred
    synonym in `language_refset` (US English by default) when the language refset is there, else its fully
    specified name without the semantic tag; the tag ("disorder", "body structure"...) becomes its semantic type.
    """
    directory = Path(directory)
    files = _find_files(directory)
    source = f"SNOMED CT {release or _release(files.concepts)}"
    return _concepts(files, problems, source, language_code, language_refset)


def _find_files(directory: Path) -> _Files:
    def matching(pattern: str) -> list[Path]:
        return sorted(p for p in directory.rglob(pattern) if p.is_file())

    concepts = matching("sct2_Concept_Snapshot*.txt")
    descriptions = matching("sct2_Description_Snapshot*.txt")
    if not directory.is_dir() or not concepts or not descriptions:
        raise KnowledgeError(
            f"no RF2 Snapshot (sct2_Concept_Snapshot*.txt and sct2_Description_Snapshot*.txt) under {directory}",
            "Give the folder of an unpacked SNOMED CT RF2 release (its Snapshot/Terminology files)",
        )
    if len(concepts) > 1:
        raise KnowledgeError(
            f"{directory} holds several SNOMED CT releases: {', '.join(str(p) for p in concepts)}",
            "Give the folder of one release's Snapshot",
        )
    files = _Files(
        concepts=concepts[0],
        descriptions=descriptions,
        definitions=matching("sct2_TextDefinition_Snapshot*.txt"),
        relationships=matching("sct2_Relationship_Snapshot*.txt"),
        language=matching("der2_cRefset_Language*Snapshot*.txt"),
    )
    absent = [
        name
        for name, found in (
            ("sct2_TextDefinition_Snapshot", files.definitions),
            ("sct2_Relationship_Snapshot", files.relationships),
            ("der2_cRefset_LanguageSnapshot", files.language),
        )
        if not found
    ]
    if absent:
        log.warning("SNOMED CT %s: %s absent; concepts will lack what they hold", directory, ", ".join(absent))
    return files


def _release(concepts_file: Path) -> str:
    """ "sct2_Concept_Snapshot_INT_20250101.txt" -> "INT 20250101"."""
    found = _RELEASE.search(concepts_file.name)
    return f"{found[1]} {found[2]}" if found else concepts_file.parent.name


def _table(
    path: Path, columns: tuple[str, ...], problems: Problems, sctid_columns: tuple[str, ...]
) -> Iterator[tuple[int, list[str]]]:
    """The active rows of an RF2 file (line number, fields), after checking its header."""
    lines = read_lines(path, problems)
    first = next(lines, None)
    if first is None or tuple(first[1].split("\t")) != columns:
        found = first[1][:200] if first else "an empty file"
        raise KnowledgeError(
            f"{path} does not start with the RF2 header {' '.join(columns)} (found: {found!r})",
            "Check that the file is the RF2 file its name says, tab-separated, and not edited",
        )
    id_at = [(c, columns.index(c)) for c in sctid_columns]
    active_at = columns.index("active")
    for line_no, line in lines:
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            problems.report(path, line_no, f"{len(fields)} tab-separated fields where the header has {len(columns)}")
            continue
        bad = next((f"{c} {fields[i]!r} is not an SCTID" for c, i in id_at if not fields[i].isdigit()), None)
        if fields[active_at] not in ("0", "1"):
            bad = bad or f"active {fields[active_at]!r} is neither 0 nor 1"
        if bad:
            problems.report(path, line_no, bad)
            continue
        if fields[active_at] == "1":
            yield line_no, fields


def _concepts(
    files: _Files, problems: Problems, source: str, language_code: str, language_refset: str
) -> Iterator[SourceConcept]:
    active = {f[0]: line_no for line_no, f in _table(files.concepts, CONCEPT_COLUMNS, problems, ("id",))}
    preferred, acceptable = _acceptability(files.language, problems, language_refset)
    use_refset = bool(preferred or acceptable)
    if files.language and not use_refset:
        log.warning("SNOMED CT: no active members of language refset %s; names are the FSNs", language_refset)

    names = _names(files.descriptions, problems, active, language_code, preferred if use_refset else None, acceptable)
    definitions = _definitions(files.definitions, problems, active, language_code)
    relations = _relations(files.relationships, problems, active)

    for concept_id, line_no in active.items():
        name = names.name(concept_id)
        if name is None:
            problems.report(files.concepts, line_no, f"concept {concept_id} has no active '{language_code}' name")
            continue
        concept = SourceConcept(
            source=source,
            id=f"SCTID:{concept_id}",
            name=name,
            snomed_ct=[concept_id],
            license=LICENSE,
            link=LINK.format(concept_id),
        )
        fsn_text, tag = _split_tag(names.fsn.get(concept_id, ""))
        if tag:
            concept.semantic_types.append(tag)
        seen = {name.casefold()}
        for synonym in (fsn_text, *names.synonyms.get(concept_id, ())):
            if synonym and synonym.casefold() not in seen:
                seen.add(synonym.casefold())
                concept.synonyms.append(synonym)
        concept.definitions = [Definition(text, source) for text in dict.fromkeys(definitions.get(concept_id, ()))]
        concept.relations = [
            Relation(kind, f"SCTID:{target}", names.name(target)) for kind, target in relations.get(concept_id, ())
        ]
        yield concept


def _names(
    paths: list[Path],
    problems: Problems,
    active: dict[str, int],
    language_code: str,
    preferred: set[int] | None,
    acceptable: set[int],
) -> _Names:
    """FSNs, preferred synonyms and other synonyms of the active concepts; `preferred` None: no language refset."""
    names = _Names()
    for path in paths:
        for _, (desc_id, _, _, _, concept_id, lang, type_id, term, _) in _table(
            path, DESCRIPTION_COLUMNS, problems, ("id", "conceptId", "typeId")
        ):
            if concept_id not in active or lang != language_code:
                continue
            if type_id == FSN:
                if concept_id not in names.fsn or (preferred is not None and int(desc_id) in preferred):
                    names.fsn[concept_id] = term
            elif type_id == SYNONYM:
                if preferred is None:
                    names.synonyms.setdefault(concept_id, []).append(term)
                elif int(desc_id) in preferred:
                    names.preferred[concept_id] = term
                elif int(desc_id) in acceptable:  # synonyms outside the dialect (GB spellings in US) are left out
                    names.synonyms.setdefault(concept_id, []).append(term)
    return names


def _definitions(
    paths: list[Path], problems: Problems, active: dict[str, int], language_code: str
) -> dict[str, list[str]]:
    definitions: dict[str, list[str]] = {}
    for path in paths:
        for _, (_, _, _, _, concept_id, lang, type_id, term, _) in _table(
            path, DESCRIPTION_COLUMNS, problems, ("id", "conceptId", "typeId")
        ):
            if concept_id in active and lang == language_code and type_id == DEFINITION:
                definitions.setdefault(concept_id, []).append(term)
    return definitions


def _acceptability(paths: list[Path], problems: Problems, refset: str) -> tuple[set[int], set[int]]:
    """Description ids preferred and acceptable in `refset` (ints: a few million ids take far less room so)."""
    preferred: set[int] = set()
    acceptable: set[int] = set()
    for path in paths:
        for _, (_, _, _, _, refset_id, description_id, acceptability) in _table(
            path, LANGUAGE_COLUMNS, problems, ("refsetId", "referencedComponentId", "acceptabilityId")
        ):
            if refset_id != refset:
                continue
            if acceptability == PREFERRED:
                preferred.add(int(description_id))
            elif acceptability == ACCEPTABLE:
                acceptable.add(int(description_id))
    return preferred, acceptable


def _relations(paths: list[Path], problems: Problems, active: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """Per source concept: its Is a and Finding site targets, inferred ones where the concept has any.

    Inferred rows carry the classifier's conclusions (the complete, non-redundant parents); stated or additional
    rows are used only for a concept that has no inferred ones (a release that ships stated rows in this file).
    """
    inferred: dict[str, list[tuple[str, str]]] = {}
    other: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        for _, f in _table(
            path, RELATIONSHIP_COLUMNS, problems, ("id", "sourceId", "destinationId", "typeId", "characteristicTypeId")
        ):
            source_id, destination, type_id, characteristic = f[4], f[5], f[7], f[8]
            kind = RELATION_KINDS.get(type_id)
            if kind is None or source_id not in active or source_id == destination:
                continue
            bucket = (inferred if characteristic == INFERRED else other).setdefault(source_id, [])
            if (kind, destination) not in bucket:
                bucket.append((kind, destination))
    return {concept_id: inferred.get(concept_id) or other[concept_id] for concept_id in inferred.keys() | other.keys()}


def _split_tag(fsn: str) -> tuple[str, str | None]:
    """ "Pneumonia (disorder)" -> ("Pneumonia", "disorder")."""
    match = _SEMANTIC_TAG.fullmatch(fsn.strip())
    return (match[1], match[2]) if match else (fsn.strip(), None)
