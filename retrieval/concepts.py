"""Concepts of the knowledge base and the file they ship in."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from retrieval.errors import KnowledgeError


class Concept(BaseModel):
    id: str
    preferred_name: str
    synonyms: list[str] = Field(default_factory=list)
    semantic_type: str
    umls_cui: str | None = Field(None, pattern=r"^C\d{7}$")
    snomed_ct: str | None = Field(None, pattern=r"^\d{6,18}$")
    code_sources: dict[str, str] = Field(default_factory=dict)
    modalities: list[str] = Field(default_factory=list)
    body_regions: list[str] = Field(default_factory=list)
    definition: str
    plain_language: str
    appearance: dict[str, str] = Field(default_factory=dict)
    urgency: Literal["emergency", "urgent", "routine"]

    def terms(self) -> list[str]:
        return [self.preferred_name, *self.synonyms]


class KnowledgeFile(BaseModel):
    name: str
    version: str
    license: str
    concepts: list[Concept]

    @property
    def source(self) -> str:
        return f"{self.name} {self.version}"


def bundled_knowledge_path() -> Path:
    return Path(str(resources.files("retrieval") / "data" / "imaging_knowledge.json"))


def load_knowledge(path: Path | None = None) -> tuple[KnowledgeFile, str]:
    """The knowledge file and a digest of its bytes (the index cache key depends on it)."""
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
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        raise KnowledgeError(
            f"the knowledge file {path} is invalid ({' '.join(first)})", "Fix the file or restore it"
        ) from exc
    ids = [c.id for c in kb.concepts]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise KnowledgeError(f"the knowledge file {path} repeats concept ids {dupes}", "Give each concept its own id")
    return kb, hashlib.sha256(raw).hexdigest()
