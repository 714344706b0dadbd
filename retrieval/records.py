"""What source loaders produce: concepts as one source states them, and mappings between sources' identifiers.

Loaders stream these records; the builder merges them into the knowledge base's concepts (by UMLS CUI where a source
gives one) and never needs to know a source's file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vesalius.retrieval.errors import KnowledgeError

Urgency = Literal["emergency", "urgent", "routine"]


@dataclass(frozen=True)
class Definition:
    text: str
    source: str  # e.g. "HPO 2025-01-16", "UMLS 2025AA MSH", "Vesalius imaging knowledge 2026.11.2"


@dataclass(frozen=True)
class Relation:
    kind: str  # "is_a" (target is a parent), "finding_site" (target is an anatomical site), or a source's own name
    target: str  # the target's identifier as a CURIE in the same source (e.g. "DOID:175", "SCTID:39607008", "C0024109")
    target_name: str | None = None


@dataclass
class SourceConcept:
    """One concept as one source states it. Identifiers are CURIEs: "DOID:552", "HP:0002090", "SCTID:233604007"."""

    source: str  # the source's short name and version: "DOID 2024-01-31", "HPO 2025-01-16", "UMLS 2025AA"
    id: str  # the concept's identifier in its source (a CURIE; a bare CUI for UMLS)
    name: str
    synonyms: list[str] = field(default_factory=list)
    umls_cuis: list[str] = field(default_factory=list)  # the first is the one the concept is merged under
    snomed_ct: list[str] = field(default_factory=list)  # SCTIDs, digits only
    icd10cm: list[str] = field(default_factory=list)  # with the dot: "J18.9"
    semantic_types: list[str] = field(default_factory=list)  # UMLS semantic type names, or a SNOMED semantic tag
    definitions: list[Definition] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    xrefs: list[str] = field(default_factory=list)  # other identifiers as CURIEs ("MONDO:0005249", "MESH:D011014")
    license: str = ""
    link: str | None = None  # a URL for the concept in its source, when the source has one
    # The project's imaging knowledge only:
    plain_language: str | None = None
    appearance: dict[str, str] = field(default_factory=dict)
    urgency: Urgency | None = None
    modalities: list[str] = field(default_factory=list)
    body_regions: list[str] = field(default_factory=list)
    code_sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """One row of an SSSOM mapping set (or an equivalent cross-reference table)."""

    subject_id: str  # CURIE, e.g. "MONDO:0005249"
    predicate_id: str  # e.g. "skos:exactMatch", "oboInOwl:hasDbXref"
    object_id: str  # CURIE, e.g. "UMLS:C0032285", "SCTID:233604007", "ICD10CM:J18.9", "DOID:552"
    subject_label: str | None = None
    object_label: str | None = None
    justification: str | None = None
    source: str = ""  # the mapping set and its version
    license: str = ""  # the mapping set's licence, as its metadata states it


@dataclass(frozen=True)
class LineProblem:
    path: Path
    line: int  # 1-based
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class Problems:
    """Malformed input lines: stop at the first (on_error="stop") or skip each and count them (on_error="skip")."""

    on_error: Literal["skip", "stop"] = "stop"
    examples_kept: int = 20
    count: int = 0
    by_file: dict[str, int] = field(default_factory=dict)
    examples: list[LineProblem] = field(default_factory=list)

    def report(self, path: Path, line: int, reason: str) -> None:
        problem = LineProblem(path, line, reason)
        if self.on_error == "stop":
            raise KnowledgeError(
                f"malformed input at {problem}",
                "Fix or remove that line, or rerun with --on-error skip to skip malformed lines and count them",
            )
        self.count += 1
        self.by_file[str(path)] = self.by_file.get(str(path), 0) + 1
        if len(self.examples) < self.examples_kept:
            self.examples.append(problem)

    def summary(self) -> str:
        if not self.count:
            return "no malformed lines"
        files = ", ".join(f"{Path(p).name}: {n}" for p, n in sorted(self.by_file.items()))
        return f"skipped {self.count} malformed line(s) ({files}); first: {self.examples[0]}"
