"""The answer in a word, where something here really answers the question: for people first, and for scoring.

Four things answer, in this order, the first three from the study itself; anything else leaves the short answer
empty (an evaluation scores that as wrong, never as a guess):

- the kind of study (CT, MRI, X-ray, ultrasound, pathology) for "what modality is this?" and "is this a CT?",
  from the DICOM tags or from the image gate when it accepted the image, with the gate's probability;
- a trained classifier's finding for a yes/no question that names it ("is there pneumonia?"): yes when the
  calibrated probability reaches the model card's operating threshold, with the probability that the short answer
  is right. It is the model's reading at its screening threshold, not a diagnosis;
- the embedded VQA model (vision/models/vqa.py), when the gate accepted the image as a kind it was trained on and
  its calibrated probability reaches its card's threshold (else it says it cannot tell);
- the language model, when one answered: the prompt asks it to start with a line "Short answer: ...". Its words
  carry no calibrated probability, and the line is taken only as the model wrote it, bounded.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import shown
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

_YES_NO = re.compile(r"^\s*(is|are|was|were|does|do|did|can|could|has|have|had|should|would|will)\b")
# "Is this (image) a CT (scan)?", "Was the image taken with an MRI?": a question about the kind of study alone. A
# yes/no question that merely names a modality ("Is the chest x-ray normal?") asks something else.
_IS_KIND = re.compile(
    r"^\s*(is|was) (this|it|the (image|scan|study|picture|film|exam))( image| scan| study| picture| film)?"
    r"( taken| obtained| done| acquired)?( with| using| by| on)?( an?| the)? (?P<what>[\w -]{1,30}?)"
    r"( scan| image| study| film| exam)?( of (the|my|your|his|her|their) [a-z]{1,15})?\s*\??\s*$"
)
_MODALITY_QUESTION = re.compile(
    r"\b(modality|kind of (image|imaging|scan|study)|type of (image|imaging|scan|study)|imaging (technique|method)"
    r"|(image|scan|study) (type|kind))\b"
)
# The gate's kinds, by the name a reader uses.
_MODALITY = {
    "ct": "CT",
    "mri": "MRI",
    "ultrasound": "ultrasound",
    "chest_xray_frontal": "X-ray",
    "chest_xray_lateral": "X-ray",
    "other_xray": "X-ray",
    "pathology": "pathology",
}
_SAID = {
    "CT": (r"\bct\b", r"computed tomograph", r"\bcat scan"),
    "MRI": (r"\bmri\b", r"\bmr\b", r"magnetic resonance"),
    "X-ray": (r"x-?\s?ray", r"radiograph", r"plain film"),
    "ultrasound": (r"ultrasound", r"sonogra", r"\bus\b"),
    "pathology": (r"patholog", r"histolog", r"microscop", r"\bslide\b"),
}
# "Has the pneumonia cleared?": a yes means the finding is absent. "Has it improved?" compares with an earlier
# film, which one film's probability cannot answer.
_ABSENCE = re.compile(
    r"\b(cleared|clear(ed)? up|resolved|gone( away)?|disappeared|ruled out|excluded|free of|no longer)\b"
)
_CHANGE = re.compile(r"\b(improv\w*|better|worse|worsen\w*|progress\w*|changed?|bigger|smaller|grown|shrunk)\b")
# A classifier's positive class, and the words that name it in a question.
_FINDING_WORDS = {"pneumonia": (r"pneumon",), "malignant": (r"malignan", r"cancer", r"carcinom")}


class ShortAnswer(BaseModel):
    text: str = Field(description="the answer in a word or phrase: yes, no, CT, MRI, X-ray, ...")
    probability: float | None = Field(
        None, description="calibrated probability that this short answer is right, when a trained model gave it"
    )
    source: str = Field(description="what gave it: a tool's name, 'dicom_tags' or 'image_gate'")
    basis: str = Field(description="the evidence, in words")
    kind: Literal["yes_no", "modality", "vqa", "model"]


def short_answer(question: str, kind: StudyKind | None, tools: list[ToolResult]) -> ShortAnswer | None:
    q = f" {question.lower().strip()} "
    return _finding(q, tools) or _modality(q, kind) or _vqa(tools)


def _vqa(tools: list[ToolResult]) -> ShortAnswer | None:
    for t in tools:
        if t.tool == VQA_TOOL and t.applied and t.probabilities and t.probabilities[0].above_threshold:
            p = t.probabilities[0]
            return ShortAnswer(
                text=p.label,
                probability=p.probability,
                source=t.tool,
                basis=f"the embedded VQA model's answer, probability {shown(p.probability)} (calibrated on held-out VQA-RAD and PathVQA images)",
                kind="vqa",
            )
    return None


# The line the prompt asks for (agent/prompt.py), allowing the Markdown emphasis models add around the label.
_MODEL_LINE = re.compile(
    r"^[\s*_#>-]{0,4}short answer[ \t*_]{0,3}:[ \t*_]*(?P<text>[^\n]{1,200})", re.IGNORECASE | re.MULTILINE
)


def from_model(text: str, model: str) -> ShortAnswer | None:
    """The model's "Short answer: ..." line, when it wrote one."""
    match = _MODEL_LINE.search(text)
    answer = match["text"].strip(" *_`").rstrip(".").strip() if match else ""
    if not answer:
        return None
    return ShortAnswer(
        text=answer,
        probability=None,
        source=model,
        basis="the language model's own short answer, without a calibrated probability",
        kind="model",
    )


def _said(q: str, patterns: tuple[str, ...]) -> bool:
    return any(re.search(p, q) for p in patterns)


def names_finding(question: str, label: str) -> bool:
    """Whether the question names a classifier's finding ("is there pneumonia?" names `pneumonia`)."""
    return _said(f" {question.lower().strip()} ", _FINDING_WORDS.get(label, (re.escape(label),)))


def _finding(q: str, tools: list[ToolResult]) -> ShortAnswer | None:
    if not _YES_NO.match(q):
        return None
    for t in tools:
        if not (t.applied and len(t.probabilities) == 1) or t.tool == VQA_TOOL:
            continue
        p = t.probabilities[0]
        if p.above_threshold is None or p.in_training_range is False:
            continue  # no operating point, or an image unlike the training images: no yes or no from it
        if not _said(q, _FINDING_WORDS.get(p.label, (re.escape(p.label),))):
            continue
        if _CHANGE.search(q):
            return None
        present = p.above_threshold
        yes = present != bool(_ABSENCE.search(q))
        return ShortAnswer(
            text="yes" if yes else "no",
            probability=round(p.probability if present else 1 - p.probability, 4),
            source=t.tool,
            # Its calibration was measured on validation images like its training data: say so where it is read.
            basis=f"probability of {p.label} {shown(p.probability)} against the model's threshold {p.threshold:.2f}, "
            "calibrated on validation images like its training data",
            kind="yes_no",
        )
    return None


def _modality(q: str, kind: StudyKind | None) -> ShortAnswer | None:
    if kind is None or kind.kind not in _MODALITY:
        return None  # the gate did not recognise the study: nothing to say about its kind
    name = _MODALITY[kind.kind]
    source = "dicom_tags" if kind.source == "dicom_tags" else "image_gate"
    gate_p = kind.probabilities or {}
    if _YES_NO.match(q):
        about_kind = _IS_KIND.match(q)
        what = f" {about_kind['what']} " if about_kind else ""
        asked = [m for m, patterns in _SAID.items() if _said(what, patterns)]
        if len(asked) != 1 or len(what.split()) > 3:
            return None
        yes = asked[0] == name
        # The gate's probability of the asked kind (all X-ray kinds together), when the gate read the image.
        asked_kinds = [k for k, m in _MODALITY.items() if m == asked[0]]
        p_asked = sum(gate_p.get(k, 0.0) for k in asked_kinds) if source == "image_gate" and gate_p else None
        return ShortAnswer(
            text="yes" if yes else "no",
            probability=None if p_asked is None else round(p_asked if yes else 1 - p_asked, 4),
            source=source,
            basis=f"the study is {kind.described()}",
            kind="modality",
        )
    if _MODALITY_QUESTION.search(q):
        return ShortAnswer(
            text=name,
            probability=kind.probability if source == "image_gate" else None,
            source=source,
            basis=f"the study is {kind.described()}",
            kind="modality",
        )
    return None
