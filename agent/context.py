"""Clinical context a user gives with a question ("5-year-old, fever and cough for three days"): de-identified
before anything keeps or sends it, bounded, and treated as data, never as instructions.

Free text has no tags to clean, so identifiers are found by their shape: dates, record numbers and other long
digit runs, contact details, names after a title or a "name:" label, and ages over 89 (HIPAA Safe Harbor's list,
as far as a pattern can reach). What cannot be found by shape (a bare name in the middle of a sentence) is why the
text is only ever shown back de-identified and fenced, and why users are told not to paste names."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from vesalius.agent.claims import sentences
from vesalius.agent.errors import AgentError
from vesalius.vision.models.probability import shown
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

MAX_CONTEXT_CHARS = 4000
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("contact", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "[contact]"),
    (
        "identifier",
        re.compile(
            r"\b(?:mrn|nhs|ssn|id|record|accession|hospital|patient)\s*(?:no\.?|number|#)?\s*[:#]?\s*[a-z]*\d[\w-]{2,}",
            re.IGNORECASE,
        ),
        "[identifier]",
    ),
    (
        "date",
        re.compile(
            # a year of 2 or 4 digits at one end: "1.3.0" is a version, not a date
            r"\b\d{4}[/.-]\d{1,2}[/.-]\d{1,2}\b|\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+\d{{2,4}}\b"
            rf"|\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b",
            re.IGNORECASE,
        ),
        "[date]",
    ),
    ("contact", re.compile(r"(?<![\w])\+?\d[\d ()-]{7,}\d\b"), "[contact]"),
    ("identifier", re.compile(r"\b\d{6,}\b"), "[identifier]"),
    (
        "name",
        re.compile(
            r"\b(?i:(?:mr|mrs|ms|miss|dr|prof)\.?\s+|(?:name|patient name)\s*[:=]\s*)[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?"
        ),
        "[name]",
    ),
    (
        "age over 89",
        re.compile(r"\b(?:9\d|1[0-4]\d)(?=[- ]?(?:years?|yrs?|y)\b[- ]?(?:old|of age)?)", re.IGNORECASE),
        "90 or more",
    ),
)


_CODE = re.compile(r"\b(?:SNOMED CT|SNOMED|SCT):? ?\d{6,18}\b")


class ClinicalContext(BaseModel):
    text: str = Field(description="the context as given, de-identified: what is kept, sent to a model and shown")
    removed: list[str] = Field(description="kinds of identifier taken out (date, identifier, name, contact, ...)")


def clinical_context(text: str) -> ClinicalContext:
    """`text` with identifiers replaced, or one clear error for text that cannot be context."""
    if "\x00" in text:
        raise AgentError("the clinical context has a NUL byte", "Give plain text")
    text = " ".join(text.split())
    if not text:
        raise AgentError("the clinical context is empty", "Give the history or indication as text, or leave it out")
    if len(text) > MAX_CONTEXT_CHARS:
        raise AgentError(
            f"the clinical context is {len(text):,} characters, over {MAX_CONTEXT_CHARS:,}",
            "Give the history, indication and key findings only",
        )
    # A SNOMED CT id is a long digit run by nature; named as one, it is a code, not a record number or a phone.
    codes = _CODE.findall(text)
    text = _CODE.sub("\x00", text)
    removed: list[str] = []
    for kind, pattern, replacement in _PATTERNS:
        text, n = pattern.subn(replacement, text)
        if n and kind not in removed:
            removed.append(kind)
    for code in codes:
        text = text.replace("\x00", code, 1)
    return ClinicalContext(text=text, removed=removed)


def disagreements(context: str, tools: list[ToolResult]) -> list[str]:
    """Where a trained tool's probability and the context point different ways on the same finding: said, not
    resolved (the context may be older than the image, the model may be wrong)."""
    out = []
    for t in tools:
        if not t.applied or t.model is None or t.tool == VQA_TOOL:
            continue
        for p in t.probabilities:
            mention = re.search(
                rf"\b(no|not|without|denies|negative for)?\W*(?:\w+\W+){{0,2}}?{re.escape(p.label)}",
                context,
                re.IGNORECASE,
            )
            if mention is None or p.in_training_range is False or p.above_threshold is None:
                continue
            denied = mention.group(1) is not None
            if p.above_threshold and denied:
                out.append(
                    f"The context says no {p.label}, but {t.tool} puts its probability at {shown(p.probability)}, "
                    f"above its screening threshold {p.threshold:.2f}: the two disagree, so review the image."
                )
            elif not p.above_threshold and not denied:
                out.append(
                    f"The context mentions {p.label}, but {t.tool} puts its probability at {shown(p.probability)}, "
                    f"below its screening threshold {p.threshold:.2f}: the two disagree, and a model can miss it."
                )
    return out


# "What did the earlier report say?", "according to the history", "what was the indication?": asked of the context.
_ABOUT_CONTEXT = re.compile(
    r"\b(?:(?:earlier|prior|previous|last|old|other|first|original)\s+(?:report|result|reading|radiology report)s?"
    r"|(?:the|my|his|her|their)\s+(?:history|indication|report|referral)|clinical (?:context|history)"
    r"|(?:report|history|context|referral)\s+(?:say|says|said|show|shows|showed|mention|mentions|mentioned))\b",
    re.IGNORECASE,
)


def asks_about_context(question: str) -> bool:
    return _ABOUT_CONTEXT.search(question) is not None


def context_answer(context: str, patient: bool) -> str:
    """The direct answer to a question about the context: what it says, first sentences, marked as its source."""
    said, total = "", 0
    for sentence in sentences(context):
        if total and total + len(sentence) > 400:
            said += " …"
            break
        said, total = f"{said} {sentence}".strip(), total + len(sentence)
    if patient:
        return f"The earlier information you gave says: {said} [context]. Please go through it with your doctor."
    return f"The clinical context given (de-identified) says: {said} [context]"
