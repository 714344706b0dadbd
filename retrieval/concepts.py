"""The knowledge base's concepts (merged from every source) and the project's imaging knowledge file."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Relation, Urgency


class SourceRef(BaseModel):
    """One source's record merged into a concept: where a statement about the concept comes from."""

    source: str  # name and version, e.g. "HPO 2025-01-16"
    id: str  # the concept's identifier there, e.g. "HP:0002090"
    license: str = ""
    link: str | None = None


class Concept(BaseModel):
    """A concept as the knowledge base knows it: every source's record for the same UMLS CUI, merged."""

    id: str  # the UMLS CUI when any source gives one, else the first source's identifier ("ICD10CM:J18.9")
    preferred_name: str
    synonyms: list[str] = Field(default_factory=list)
    umls_cui: str | None = None
    other_cuis: list[str] = Field(default_factory=list)  # CUIs that sources merged into this concept also named
    snomed_ct: list[str] = Field(default_factory=list)
    icd10cm: list[str] = Field(default_factory=list)
    semantic_types: list[str] = Field(default_factory=list)
    definitions: list[Definition] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
    sources: list[SourceRef] = Field(default_factory=list)
    xrefs: list[str] = Field(default_factory=list)
    # From the project's imaging knowledge only (None or empty for concepts it does not cover):
    plain_language: str | None = None
    appearance: dict[str, str] = Field(default_factory=dict)
    urgency: Urgency | None = None
    modalities: list[str] = Field(default_factory=list)
    body_regions: list[str] = Field(default_factory=list)
    code_sources: dict[str, str] = Field(default_factory=dict)

    def terms(self) -> list[str]:
        return [self.preferred_name, *self.synonyms]

    @property
    def definition(self) -> Definition | None:
        return self.definitions[0] if self.definitions else None

    @property
    def codes(self) -> list[str]:
        """Every code as a CURIE: what `kb show` accepts and what a citation names."""
        return [
            *([f"UMLS:{self.umls_cui}"] if self.umls_cui else []),
            *(f"UMLS:{c}" for c in self.other_cuis),
            *(f"SCTID:{c}" for c in self.snomed_ct),
            *(f"ICD10CM:{c}" for c in self.icd10cm),
        ]


class ImagingConcept(BaseModel):
    """One entry of the imaging knowledge file (the project's own text; codes verified against open ontologies)."""

    id: str
    preferred_name: str
    synonyms: list[str] = Field(default_factory=list)
    semantic_type: str
    umls_cui: str | None = Field(None, pattern=r"^C\d{7}$")
    snomed_ct: str | None = Field(None, pattern=r"^\d{6,18}$")
    icd10cm: list[str] = Field(default_factory=list)
    code_sources: dict[str, str] = Field(default_factory=dict)
    modalities: list[str] = Field(default_factory=list)
    body_regions: list[str] = Field(default_factory=list)
    definition: str
    plain_language: str
    appearance: dict[str, str] = Field(default_factory=dict)
    urgency: Urgency

    def terms(self) -> list[str]:
        return [self.preferred_name, *self.synonyms]


class KnowledgeFile(BaseModel):
    name: str
    version: str
    license: str
    concepts: list[ImagingConcept]

    @property
    def source(self) -> str:
        return f"{self.name} {self.version}"


def bundled_knowledge_path() -> Path:
    return Path(str(resources.files("vesalius.retrieval") / "data" / "imaging_knowledge.json"))


def load_knowledge(path: Path | None = None) -> tuple[KnowledgeFile, str]:
    """The imaging knowledge file and a digest of its bytes (a build's version depends on it)."""
    path = path or bundled_knowledge_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KnowledgeError(
            f"cannot read the knowledge file {path}: {exc.strerror}",
            "Check the knowledge file path setting (knowledge_path)",
        ) from exc
    try:
        kb = KnowledgeFile.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        raise KnowledgeError(
            f"the knowledge file {path} is invalid ({' '.join(first)})", "Fix the file or restore it"
        ) from exc
    ids = [c.id for c in kb.concepts]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise KnowledgeError(f"the knowledge file {path} repeats concept ids {dupes}", "Give each concept its own id")
    return kb, hashlib.sha256(raw).hexdigest()
