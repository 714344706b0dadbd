"""Each sentence of an answer tied to what supports it: a tool's output, a cited passage, the study's header, or the
model's own reading. A sentence the language model wrote that nothing here supports is flagged (or removed, by
option): the reader should know which words rest on evidence and which are the model's alone."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from vesalius.vision.study import StudySummary
from vesalius.vision.tools.base import ToolResult

if TYPE_CHECKING:  # the answer holds the claims: the citation type is only read here
    from vesalius.agent.answer import Citation

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"'])|\n+")
_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")  # decimals: what tools report; counts match too much
_CITED = re.compile(r"\[(\d{1,3})\]")
_WORD = re.compile(r"[a-z][a-z-]{3,}")
_STOP = frozenset(
    re.findall(
        r"\w+",
        "this that with from have been were will would could should there their these those which about into than "
        "then they them what when where your image study shows show likely probability answer question model tool "
        "tools also more less most some such only very",
    )
)
_OVERLAP = 0.5  # share of a sentence's content words an evidence text must hold to count as its support
_MIN_SHARED = 2


class Evidence(BaseModel):
    kind: Literal["tool", "passage", "study", "model", "context"]
    ref: str = Field(description="the tool's name, the citation's [n], 'study header', 'context', or the model's name")
    quote: str = Field(description="the part of the evidence that supports the sentence, shortened")


class Claim(BaseModel):
    sentence: str
    author: Literal["vesalius", "model"] = Field(
        description="who wrote the sentence: Vesalius from the tools and sources, or the language model"
    )
    evidence: list[Evidence]
    supported: bool = Field(
        description="false only for a model sentence nothing here supports: shown with '?', or removed by option"
    )


def sentences(text: str) -> list[str]:
    return [s.strip(" -•\t") for s in _SENTENCE.split(text) if s.strip(" -•\t")]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


_BOUNDS = {0.0, 0.01, 0.99, 1.0}  # "< 0.01", "> 0.99": how probabilities are shown at the ends, so they match anything


def _numbers(text: str) -> set[float]:
    return {float(n) for n in _NUMBER.findall(text)} - _BOUNDS


def _tool_numbers(t: ToolResult) -> set[float]:
    values = {round(p.probability, 2) for p in t.probabilities} | {round(v, 2) for v in t.measurements.values()}
    if t.anomaly is not None:
        values |= {round(t.anomaly.score, 2), round(t.anomaly.threshold, 2)}
    return values | {float(round(r.score, 2)) for r in t.regions}


def evidence_for(
    sentence: str,
    tools: list[ToolResult],
    citations: list[Citation],
    study: StudySummary | None,
    context: str | None = None,
) -> list[Evidence]:
    found: list[Evidence] = []
    lower = sentence.lower()
    by_number = {c.number: c for c in citations}
    for n in dict.fromkeys(int(m) for m in _CITED.findall(sentence)):
        if n in by_number:
            found.append(Evidence(kind="passage", ref=f"[{n}]", quote=by_number[n].passage[:160]))
    words, numbers = _words(sentence), {round(x, 2) for x in _numbers(sentence)}
    for t in tools:
        if not t.applied:
            continue
        text = f"{t.summary} {' '.join(p.label for p in t.probabilities)}"
        shared_numbers = numbers & _tool_numbers(t)
        if t.tool in lower or shared_numbers or _covers(words, _words(text)):
            found.append(Evidence(kind="tool", ref=t.tool, quote=t.summary[:160]))
    for c in citations:
        if f"[{c.number}]" not in sentence and _covers(words, _words(f"{c.name} {c.passage}")):
            found.append(Evidence(kind="passage", ref=f"[{c.number}]", quote=c.passage[:160]))
    if context and ("[context]" in sentence or _covers(words, _words(context))):
        found.append(Evidence(kind="context", ref="context", quote=context[:160]))
    if study is None:
        return found
    header = study.one_line()
    if _covers(words, _words(header)) or (study.modality and re.search(rf"\b{re.escape(study.modality)}\b", sentence)):
        found.append(Evidence(kind="study", ref="study header", quote=header[:160]))
    return found


def _covers(words: set[str], evidence: set[str]) -> bool:
    shared = words & evidence
    return len(shared) >= _MIN_SHARED and len(shared) >= _OVERLAP * len(words)


def claims(
    direct: str,
    body: str,
    model_name: str | None,
    tools: list[ToolResult],
    citations: list[Citation],
    study: StudySummary | None,
    context: str | None = None,
) -> list[Claim]:
    """Vesalius's own sentences (the direct answer, and the whole body when no model wrote it) are supported by
    construction, with their evidence listed where they state some; the model's need evidence found here."""
    out = [
        Claim(sentence=s, author="vesalius", evidence=evidence_for(s, tools, citations, study, context), supported=True)
        for s in sentences(direct)
    ]
    for s in sentences(body):
        evidence = evidence_for(s, tools, citations, study, context)
        if model_name is None:
            out.append(Claim(sentence=s, author="vesalius", evidence=evidence, supported=True))
        else:
            out.append(Claim(sentence=s, author="model", evidence=evidence, supported=bool(evidence)))
    return out


def without_unsupported(body: str, found: list[Claim]) -> str:
    """The model's text less the sentences nothing supports."""
    for claim in found:
        if not claim.supported:
            body = body.replace(claim.sentence, "", 1)
    body = re.sub(r"[ \t]{2,}", " ", body)
    return re.sub(r"[ \t]+\n", "\n", re.sub(r"\n{3,}", "\n\n", body)).strip()
