"""What a conversation found, as one typed record for the reports that leave Vesalius (FHIR R4, DICOM SR, JSON).

Built from the thread's latest answer and its study as loaded again (de-identified, so every UID is the keyed
replacement the de-identified copy carries, never the source's own). Only tool outputs become findings: a
trained model's calibrated probability with its operating point, an anomaly score with its regions. The visual
question-answering model's reply is an answer, not a finding, and stays in the answer text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vesalius.agent.answer import Answer
from vesalius.vision.study import Study, StudySummary
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL


class Coded(BaseModel):
    """A concept with its codes, as the knowledge base gives them."""

    name: str
    umls_cui: str | None = None
    snomed_ct: list[str] = []
    icd10cm: list[str] = []


class ImageRef(BaseModel):
    """The image the tools looked at, by its de-identified UIDs."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None = Field(None, description="1-based frame in a multi-frame file; None for one image")


class ModelRef(BaseModel):
    name: str
    version: str
    validation: str = Field(description="the model card's headline validation numbers")


class ProbabilityFinding(BaseModel):
    tool: str
    model: ModelRef
    label: str
    probability: float = Field(description="calibrated on validation; a likelihood, not a verdict")
    threshold: float | None = Field(description="the model card's screening threshold")
    above_threshold: bool | None
    in_training_range: bool | None = Field(description="false: the probability has no calibrated meaning here")
    concept: Coded | None = Field(description="what the label means, with codes; None when the knowledge base lacks it")
    caveats: list[str]


class RegionFinding(BaseModel):
    """A rectangle on the image (pixels of the image's own grid, origin top-left)."""

    x: int
    y: int
    width: int
    height: int
    score: float
    unit: str
    side: str | None


class AnomalyFinding(BaseModel):
    tool: str
    model: ModelRef
    score: float
    threshold: float
    normal_percentile: float
    unusual: bool
    summary: str
    regions: list[RegionFinding]
    caveats: list[str]


class Findings(BaseModel):
    vesalius_version: str
    written: datetime = Field(description="when this record was made (UTC); not a date of the patient's care")
    thread_id: str
    turn: int
    question: str
    direct_answer: str
    answer: str
    uncertainty: str
    urgent: list[str]
    study: StudySummary | None
    study_uid: str | None = Field(
        description="the de-identified StudyInstanceUID; for a plain image, a UID derived from its content id"
    )
    image: ImageRef | None = Field(description="the DICOM image the tools looked at; None for a plain image")
    image_size: tuple[int, int] | None = Field(description="(rows, columns) of the image regions are drawn on")
    probabilities: list[ProbabilityFinding]
    anomalies: list[AnomalyFinding]
    concepts: list[Coded] = Field(description="the concepts the answer cites")
    context: str | None = Field(description="the clinical context the thread carries, de-identified")
    knowledge_base: str
    answer_source: str
    model: str | None = Field(description="the language model that wrote the answer, when one did")


Lookup = Callable[[str], Coded | None]


def findings(answer: Answer, study: Study | None, lookup: Lookup, version: str) -> Findings:
    """The findings of `answer`, about `study` as loaded again (None for a conversation without one). `lookup` maps a
    model's label ("pneumonia") to its concept, or None."""
    shown = answer.study.frame_shown if answer.study else None
    image = _image_ref(study, shown) if study is not None else None
    summary = study.summary if study is not None else None
    probabilities, anomalies = [], []
    for t in answer.tools:
        if not t.applied or t.model is None or t.tool == VQA_TOOL:
            continue
        model = ModelRef(name=t.model.name, version=t.model.version, validation=t.model.validation)
        probabilities += [
            ProbabilityFinding(
                tool=t.tool,
                model=model,
                label=p.label,
                probability=p.probability,
                threshold=p.threshold,
                above_threshold=p.above_threshold,
                in_training_range=p.in_training_range,
                concept=lookup(p.label),
                caveats=t.caveats,
            )
            for p in t.probabilities
        ]
        if t.anomaly is not None:
            anomalies.append(_anomaly(t, model))
    return Findings(
        vesalius_version=version,
        written=datetime.now(UTC).replace(microsecond=0),
        thread_id=answer.thread_id,
        turn=answer.turn,
        question=answer.question,
        direct_answer=answer.direct_answer,
        answer=answer.answer,
        uncertainty=answer.uncertainty,
        urgent=answer.urgent,
        study=summary,
        study_uid=image.study_uid if image else (derived_uid(summary.study_id) if summary else None),
        image=image,
        image_size=(summary.rows, summary.columns) if summary else None,
        probabilities=probabilities,
        anomalies=anomalies,
        concepts=[
            Coded(name=c.name, umls_cui=c.umls_cui, snomed_ct=c.snomed_ct, icd10cm=c.icd10cm)
            for c in answer.citations
            if c.found_in == "question"
        ],
        context=answer.context.text if answer.context else None,
        knowledge_base=answer.knowledge_base,
        answer_source=answer.answer_source,
        model=answer.model.name if answer.model.used else None,
    )


def derived_uid(text: str) -> str:
    """A UID under "2.25." (PS3.5 B.2) from a digest of `text`: the same content always gets the same UID."""
    return "2.25." + str(int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big"))


def _image_ref(study: Study, index: int | None) -> ImageRef | None:
    index = study.index if index is None else index
    source = study.sources[index] if 0 <= index < len(study.sources) else None
    if source is None or source.dicom is None:
        return None
    d = source.dicom
    return ImageRef(
        study_uid=d.study_uid,
        series_uid=d.series_uid,
        sop_class_uid=d.sop_class_uid,
        sop_instance_uid=d.sop_instance_uid,
        frame_number=None if source.frame is None else source.frame + 1,
    )


def _anomaly(t: ToolResult, model: ModelRef) -> AnomalyFinding:
    assert t.anomaly is not None
    return AnomalyFinding(
        tool=t.tool,
        model=model,
        score=t.anomaly.score,
        threshold=t.anomaly.threshold,
        normal_percentile=t.anomaly.normal_percentile,
        unusual=t.anomaly.unusual,
        summary=t.summary,
        regions=[
            RegionFinding(x=r.x, y=r.y, width=r.width, height=r.height, score=r.score, unit=r.unit, side=r.side)
            for r in t.regions
        ],
        caveats=t.caveats,
    )
