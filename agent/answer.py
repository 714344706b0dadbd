"""The answer Vesalius gives: one pydantic model, printed as text or as JSON (`--json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from vesalius.agent.claims import Claim
from vesalius.agent.compare import Comparison
from vesalius.agent.context import ClinicalContext
from vesalius.agent.follow_up import FollowUp
from vesalius.agent.router import RoutePlan
from vesalius.agent.schema import SCHEMA_VERSION
from vesalius.agent.short_answer import ShortAnswer
from vesalius.vision.deid_record import DeidRecord
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.study import Study, StudySummary
from vesalius.vision.tools.base import ToolResult


class Citation(BaseModel):
    number: int = Field(description="the [n] used in the answer text")
    concept_id: str = Field(description="the knowledge base's concept id: the UMLS CUI when a source gives one")
    name: str
    umls_cui: str | None
    snomed_ct: list[str] = Field(description="SNOMED CT concept ids")
    icd10cm: list[str] = Field(description="ICD-10-CM codes")
    source: str = Field(description="the source of the passage, with its version")
    sources: list[str] = Field(description="every source record merged into the concept, as 'source: id'")
    link: str | None = Field(None, description="a web page for the concept in one of its sources")
    code_sources: dict[str, str] = Field(description="where each code of the project's imaging knowledge was verified")
    passage: str = Field(description="the passage given as evidence")
    score: float = Field(
        description="retrieval score: fused rank score in [0, 1], plus a bonus up to 1 when a term is written out"
    )
    dense: float | None = Field(None, description="cosine similarity of the closest embedded term or definition")
    lexical: float | None = Field(None, description="BM25 score")
    matched_term: str | None = Field(None, description="the term found verbatim in the question, if any")
    found_in: Literal["question", "context"] = Field(
        "question", description="named in the question (or closest to it), or in the clinical context (schema 8)"
    )
    urgency: Literal["emergency", "urgent", "routine"] | None = Field(
        description="urgency when newly found on imaging (the project's imaging knowledge); null when not assessed"
    )


class LinkedConcept(BaseModel):
    where: Literal["question", "answer", "context"]
    text: str = Field(description="the words as written")
    start: int
    end: int
    concept_id: str
    umls_cui: str | None
    name: str
    method: Literal["exact", "synonym", "abbreviation", "spelling", "dense"]
    score: float


class ModelUse(BaseModel):
    used: bool
    name: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    image_parts: int = 0


class Clarification(BaseModel):
    question: str
    options: list[str]


class Answer(BaseModel):
    schema_version: str = SCHEMA_VERSION
    thread_id: str
    turn: int = Field(description="1 for the first question of a thread")
    question: str
    study: StudySummary | None = Field(
        description="the study as shown: frame_shown and window are the ones used; null in a conversation without a "
        "study (schema 8)"
    )
    shown: str = Field(description="which images were looked at, why, and through which window")
    deidentification: DeidRecord | None = Field(description="what de-identification removed (DICOM only)")
    route: RoutePlan
    study_kind: StudyKind | None = Field(
        description="what kind of study the gate found (decides which trained models apply); null when no tool ran"
    )
    tools: list[ToolResult] = Field(description="every tool, with what it found or why it did not run")
    urgent: list[str] = Field(description="urgent notes, shown before everything else")
    short_answer: ShortAnswer | None = Field(
        description="the answer in a word (yes, no, CT ...) where a tool or the study's kind answers it; null when "
        "nothing here does (schema 5)"
    )
    direct_answer: str = Field(
        description="the first sentence of `answer`: the answer to the question asked, with its probability and what "
        "gave it, or that these tools cannot tell and what would be needed (schema 6)"
    )
    answer: str
    answer_source: Literal["model", "tools_and_knowledge"]
    model: ModelUse
    uncertainty: str
    citations: list[Citation]
    knowledge_base: str = Field(description="the knowledge base version and its sources")
    linked_concepts: list[LinkedConcept] = Field(description="concepts named in the question and in the answer")
    warnings: list[str]
    follow_up: FollowUp | None = Field(
        None, description="how the question leans on the previous turn, when it does (schema 8)"
    )
    comparison: Comparison | None = Field(
        None, description="the thread's prior study against this one, per tool, when compared (schema 8)"
    )
    context: ClinicalContext | None = Field(
        None, description="the clinical context the thread carries, de-identified (schema 8)"
    )
    clarification: Clarification | None = Field(
        None,
        description="a question Vesalius asks before it can answer (which series, ...); the next message on the "
        "thread answers it, and the original question is then answered (schema 8)",
    )
    claims: list[Claim] = Field(
        default_factory=list,
        description="each sentence of `answer` with the tool output, passage, study header or model reading that "
        "supports it; a model sentence with none is flagged (schema 8)",
    )


def clarification(thread_id: str, question: str, study: Study | None, asked: dict, turn: int) -> Answer:
    """The answer of a turn that stopped to ask: the clarifying question is its direct answer, nothing was measured."""
    c = Clarification.model_validate(asked)
    text = "\n".join([c.question, *(f"- {o}" for o in c.options)])
    return Answer(
        thread_id=thread_id,
        turn=turn,
        question=question,
        study=study.summary if study else None,
        shown="nothing yet: waiting for the answer to the question above",
        deidentification=study.deid if study else None,
        route=RoutePlan(tools=[], reasons={}, audience="clinician", intent="describe"),
        study_kind=None,
        tools=[],
        urgent=[],
        short_answer=None,
        direct_answer=c.question,
        answer=text,
        answer_source="tools_and_knowledge",
        model=ModelUse(used=False),
        uncertainty="Nothing was measured yet: Vesalius needs the answer to its question first.",
        citations=[],
        knowledge_base="",
        linked_concepts=[],
        warnings=[],
        clarification=c,
    )


class Turn(BaseModel):
    """One finished turn of a conversation, as `Vesalius.history` returns it."""

    turn: int
    question: str
    answer: str
    concepts: list[str] = Field(description="concept ids cited in the answer")
