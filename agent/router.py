"""Rules that decide, from the question and the study, which tools run and who the answer is for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

# A word-stem list per tool; the stems are matched at word starts ("effus" finds "effusion").
_ABNORMALITY = (
    "abnormal",
    "normal",
    "finding",
    "lesion",
    "mass",
    "nodul",
    "opaci",
    "effus",
    "pneumo",
    "fractur",
    "bleed",
    "haemorrh",
    "hemorrh",
    "tumo",
    "cancer",
    "wrong",
    "sign ",
    "signs",
    "infect",
    "consolid",
    "collaps",
    "enlarg",
    "asymmetr",
    "anomal",
    "unusual",
    "suspici",
    "which side",
    "health",
    "unhealth",
    "disease",
    "patholog",
    "observ",
    "cardiomegal",
    "atelecta",
    "edema",
    "oedema",
    "infiltrat",
    "evidence of",
    "diagnos",
    "aneurysm",
    "ascites",
    "atroph",
    "thicken",
    "hyperinflat",
    "blunt",
    "widen",
    "narrow",
    "deviat",
    "shift",
    "perforat",
    "adenopath",
    "clot",
    "abscess",
    # Densities that are findings in themselves, not tissue to measure
    "air-fluid",
    "air fluid",
    "free air",
    "calcif",
    "fat strand",
)
# Words that ask about a finding only when nothing says the question is about anatomy or the study itself: "where is
# the lesion?" is about a finding, "where is the heart?" and "how many lungs are shown?" are not.
_WEAK_ABNORMALITY = ("see", "show", "visible", "present", "where")
_ANATOMY = re.compile(
    r"\bhow many\b|\bmodality\b|\bwhich (?:part|organ|type|plane)|\borgans?\b|\bplane\b|\bin the body\b"
)
# Questions about the body's knowledge that name the image ("what is the function of the organ in this picture?"):
# answered from the knowledge base, not by measuring the image.
_KNOWLEDGE = re.compile(
    r"\b(?:function|effect|cause)s? of\b|\bbelongs? to (?:the )?[\w ]{0,20}system\b|\bpart of the [\w ]{0,20}system\b|\bhow to (?:prevent|treat)\b"
    r"|\bsymptoms?\b|\bdamage\b[\w ]{0,30}\btaking\b|\borgans?\b[\w ]{0,30}\b(?:that|which) (?:could|can|has|have)\b"
)
_ATTENUATION = (
    "hu ",
    "hu?",
    "hu,",
    "hu.",
    "color",
    "colour",
    "bright",
    "hyperdens",
    "hypodens",
    "hyperintens",
    "hypointens",
    "hounsfield",
    "attenuat",
    "densit",
    "dense",
    "fat",
    "fluid",
    "bone",
    "calcif",
    "air",
    "gas",
    "tissue",
    "composition",
)
_QUALITY = (
    "quality",
    "low contrast",
    "poor contrast",
    "image contrast",
    "blurry",
    "blurred image",
    "noise",
    "noisy",
    "artefact",
    "artifact",
    "readable",
    "diagnostic",
    "exposure",
    "motion",
)
_DESCRIBE = (
    "describe",
    "what does this",
    "what is this",
    "what do you see",
    "summar",
    "overview",
    "tell me about",
    "report",
)
# Definitional questions ("what does X mean?", "what is a Y?") ask about a term rather than about the image.
_EXPLAIN = re.compile(
    r"\bmeans?\b|\bmeaning\b|\bexplain|\bdefin|\bwhat (is|are) (a|an)\b|^ what (is|are) (?!the\b|this\b|there\b)[\w -]+\?? $"
)
_IMAGE_REF = ("this", "image", "scan", "study", "film", "picture", "x-ray", "xray", "here", "mine", "my ")
_PATIENT = ("my ", " i ", "i'm", "am i", "should i", "worried", "worry", "serious", "scared", "will i")


# CT window presets (vesalius.vision.windows.PRESETS) and the tissue to look for (vesalius.vision.slices.FOCI), by question stems;
# the first entry that matches wins, so the specific (subdural) comes before the general (brain).
_VIEWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("subdural", "blood", ("subdural", "extradural", "epidural")),
    ("brain", "blood", ("bleed", "haemorrh", "hemorrh", "hematom", "haematom")),
    ("brain", "brain", ("brain", "stroke", "infarct", "intracran", "cerebr", "ventric")),
    (
        "lung",
        "lung",
        (
            "lung",
            "nodul",
            "emphysem",
            "pneumothora",
            "pneumonia",
            "consolid",
            "ground-glass",
            "ground glass",
            "airway",
            "bronch",
            "interstiti",
            "fibros",
            "cavit",
            "pulmonar",
        ),
    ),
    (
        "bone",
        "bone",
        (
            "fractur",
            "bone",
            "bony",
            "osseous",
            "lytic",
            "sclero",
            "vertebr",
            "spine",
            "spinal",
            "rib",
            "ribs",
            "skull",
            "pelvi",
            "joint",
        ),
    ),
    (
        "mediastinum",
        "soft tissue",
        ("mediastin", "lymph", "aort", "heart", "cardi", "pericard", "effus", "oesophag", "esophag", "thym", "pleura"),
    ),
    (
        "abdomen",
        "soft tissue",
        (
            "liver",
            "hepat",
            "kidney",
            "renal",
            "spleen",
            "splen",
            "pancrea",
            "bowel",
            "append",
            "abdom",
            "gallbladder",
            "adrenal",
            "ascites",
            "colon",
            "stomach",
        ),
    ),
)
_IMAGE_NUMBER = re.compile(
    r"\b(?:slice|image|frame|section)s?\s*(?:no\.?|number|#)?\s*(\d{1,4})(?:\s*(?:-|to|and)\s*(\d{1,4}))?"
)


class RoutePlan(BaseModel):
    tools: list[str]
    reasons: dict[str, str]
    audience: Literal["clinician", "patient"]
    intent: Literal["describe", "abnormality", "measurement", "quality", "explain"]
    window: str | None = None  # a CT window preset the question calls for
    focus: str | None = None  # the tissue whose slices to show
    view_reason: str | None = None
    images: list[int] = []  # 1-based slice or frame numbers the question names
    planner: Literal["rules", "model"] = "rules"
    planner_note: str | None = None  # why the model did not plan when one was asked to


def _has(text: str, stems: tuple[str, ...]) -> str | None:
    for stem in stems:
        pattern = rf"(?<!\w){re.escape(stem.strip())}" if stem.strip() == stem else re.escape(stem)
        if re.search(pattern, text):
            return stem.strip()
    return None


def plan_route(question: str, available: Mapping[str, frozenset[str]]) -> RoutePlan:
    """Choose tools among `available` (name -> the intents it answers, from the tool registry); whether each
    applies to the study is decided later by the tool itself."""
    q = f" {question.lower().strip()} "
    reasons: dict[str, str] = {}

    def want(intent: str, why: str) -> None:
        for name, answers in available.items():
            if intent in answers:
                reasons.setdefault(name, why)

    if (_EXPLAIN.search(q) and not _has(q, _IMAGE_REF) and not _has(q, _DESCRIBE)) or _KNOWLEDGE.search(q):
        intent = "explain"  # a question about a term or the body, not about this image: knowledge only
    elif (hit := _has(q, _DESCRIBE)) and not _has(q, _ABNORMALITY):  # "describe the lesion" asks about a finding
        intent = "describe"
        reasons = {name: f"the question asks for a description ('{hit}')" for name in available}
    else:
        asked = []
        if hit := _has(q, _ABNORMALITY):
            want("abnormality", f"the question is about a finding or abnormality ('{hit}')")
            asked.append("abnormality")
        if hit := _has(q, _ATTENUATION):
            want("measurement", f"the question is about tissue density or attenuation ('{hit}')")
            asked.append("measurement")
        if hit := _has(q, _QUALITY):
            want("quality", f"the question is about image quality ('{hit}')")
            asked.append("quality")
        if not asked and not _ANATOMY.search(q) and (hit := _has(q, _WEAK_ABNORMALITY)):
            want("abnormality", f"the question may be about a finding ('{hit}')")
            asked.append("abnormality")
        if asked:
            # Whatever a tool measures, the reader needs to know whether the image is good enough to trust it.
            want("quality", "any measurement depends on whether the image is usable")
        intent = asked[0] if asked else "describe"
        if not asked:
            reasons = {
                name: "no specific tool matched the question, so every applicable tool runs" for name in available
            }
    tools = [name for name in available if name in reasons]
    window, focus, view_reason = _view(q)
    return RoutePlan(
        window=window,
        focus=focus,
        view_reason=view_reason,
        images=_image_numbers(q),
        tools=tools,
        reasons={name: reasons[name] for name in tools},
        audience="patient" if _has(q, _PATIENT) else "clinician",
        intent=intent,
    )


def _view(q: str) -> tuple[str | None, str | None, str | None]:
    for window, focus, stems in _VIEWS:
        if hit := _has(q, stems):
            return window, focus, f"the question is about '{hit}'"
    return None, None, None


def _image_numbers(q: str) -> list[int]:
    """ "slice 40", "images 3 to 5": numbers a user reads off a viewer, 1-based."""
    numbers: list[int] = []
    for match in _IMAGE_NUMBER.finditer(q):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        numbers += range(first, min(last, first + 31) + 1) if last >= first else [first, last]
    return sorted(set(numbers))
