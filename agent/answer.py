"""The answer Vesalius gives: one pydantic model, printed as text or as JSON (`--json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agent.router import RoutePlan
from vision.deid import DeidRecord
from vision.models.gate import StudyKind
from vision.study import StudySummary
from vision.tools.base import ToolResult

SCHEMA_VERSION = "3"


class Citation(BaseModel):
    number: int = Field(description="the [n] used in the answer text")
    concept_id: str
    name: str
    umls_cui: str | None
    snomed_ct: str | None
    source: str = Field(description="knowledge source and version")
    code_sources: dict[str, str] = Field(description="where each code was verified")
    passage: str = Field(description="the passage given as evidence")
    score: float = Field(description="retrieval score (dense cosine + exact-term bonus)")
    matched_term: str | None = Field(None, description="the term found verbatim in the question, if any")
    urgency: Literal["emergency", "urgent", "routine"]


class ModelUse(BaseModel):
    used: bool
    name: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    image_parts: int = 0


class Answer(BaseModel):
    schema_version: str = SCHEMA_VERSION
    thread_id: str
    turn: int = Field(description="1 for the first question of a thread")
    question: str
    study: StudySummary = Field(description="the study as shown: frame_shown and window are the ones used")
    shown: str = Field(description="which images were looked at, why, and through which window")
    deidentification: DeidRecord | None = Field(description="what de-identification removed (DICOM only)")
    route: RoutePlan
    study_kind: StudyKind | None = Field(
        description="what kind of study the gate found (decides which trained models apply); null when no tool ran"
    )
    tools: list[ToolResult] = Field(description="every tool, with what it found or why it did not run")
    urgent: list[str] = Field(description="urgent notes, shown before everything else")
    answer: str
    answer_source: Literal["model", "tools_and_knowledge"]
    model: ModelUse
    uncertainty: str
    citations: list[Citation]
    warnings: list[str]
