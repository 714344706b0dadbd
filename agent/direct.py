"""The first sentence of every answer: the answer to the question asked, with its probability and what gave it, or
"cannot tell from these tools" and what would be needed. The evidence follows it.

When two tools answer the same yes/no question differently (a trained classifier above its threshold, the VQA
model saying no), the sentence says so instead of choosing silently; the short answer stays the more direct
evidence (the classifier), as `short_answer` orders it.
"""

from __future__ import annotations

from vesalius.agent.short_answer import ShortAnswer, names_finding
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import shown
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

_WHAT = {
    "yes_no": "the {source} model",
    "modality": "{source_words}",
    "vqa": "the embedded VQA model",
    "model": "the language model {source}",
}
_SOURCE_WORDS = {"dicom_tags": "the study's DICOM header", "image_gate": "the image gate"}
# For a patient: what gave the answer, in everyday words.
_PLAIN = {
    "yes_no": "a computer program trained on images like yours",
    "modality": "the information stored with the scan",
    "vqa": "a computer program that answers questions about images",
    "model": "a language program",
}


def _by(short: ShortAnswer) -> str:
    return _WHAT[short.kind].format(source=short.source, source_words=_SOURCE_WORDS.get(short.source, short.source))


def _chance(p: float) -> str:
    """A probability in plain words, never 'certain'."""
    n = min(99, max(1, round(p * 100)))
    return f"about {n} in 100"


def disagreement(short: ShortAnswer | None, tools: list[ToolResult]) -> str | None:
    """A yes/no answer another tool contradicts: the VQA model against a classifier's finding."""
    if short is None or short.kind != "yes_no":
        return None
    vqa = next((t for t in tools if t.tool == VQA_TOOL and t.applied and t.probabilities), None)
    if vqa is None or not vqa.probabilities[0].above_threshold:
        return None
    said = vqa.probabilities[0].label.lower()
    if said in ("yes", "no") and said != short.text:
        return f"the embedded VQA model says {said} (probability {shown(vqa.probabilities[0].probability)})"
    return None


def direct_answer(
    short: ShortAnswer | None,
    tools: list[ToolResult],
    kind: StudyKind | None,
    *,
    patient: bool,
    explain: bool,
    first_passage: tuple[str, str, int] | None,
    model_configured: bool,
    question: str = "",
) -> str:
    if explain and first_passage:  # "what does X mean?": the definition is the answer
        name, passage, number = first_passage
        sentence = passage.split(". ")[0].rstrip(".")
        return f"{name}: {sentence} [{number}]."
    other = disagreement(short, tools)
    if short is not None:
        unsure = short.probability is not None and short.probability < 0.5
        if patient:
            chance = (
                f" ({_chance(short.probability)} chance that this is right)" if short.probability is not None else ""
            )
            lead = "best guess" if unsure else "short answer"
            text = (
                f"The {lead} from {_PLAIN[short.kind]} is {short.text}{chance}{', so it is unsure' if unsure else ''}."
            )
            if other:
                text += f" Another tool disagrees: {other}."
            if _unfamiliar(tools, question):
                text += " One program was not used: this picture is unlike the ones it learnt from."
            return text + " This is not a diagnosis: please go through it with your doctor."
        if unsure:  # a best guess is not an answer: say so before the word
            text = f"Uncertain; the best guess is {short.text}: {short.basis}, more likely wrong than right [{short.source}]."
        else:
            text = f"{short.text[:1].upper()}{short.text[1:]}: {short.basis} [{short.source}]."
        text += f" The tools disagree: {other}; read both below." if other else ""
        if silent := _unfamiliar(tools, question):
            text += f" The {silent} gives no answer: the image lies outside the images it learnt from."
        return text
    return _cannot_tell(tools, kind, question, patient=patient, model_configured=model_configured)


def _unfamiliar(tools: list[ToolResult], question: str) -> str:
    """The trained tools whose finding the question names but whose probabilities mean little here (the image is
    outside their training range), by name in words."""
    names = [
        t.tool.replace("_", " ")
        for t in tools
        if t.applied and any(p.in_training_range is False and names_finding(question, p.label) for p in t.probabilities)
    ]
    return " and the ".join(names)


def _cannot_tell(
    tools: list[ToolResult], kind: StudyKind | None, question: str, *, patient: bool, model_configured: bool
) -> str:
    vqa = next((t for t in tools if t.tool == VQA_TOOL), None)
    unfamiliar = _unfamiliar(tools, question)
    reasons = []
    if kind is not None and not kind.accepted:
        reasons.append(f"no trained model read this image ({kind.described()})")
    else:
        if vqa is not None and vqa.applied and vqa.probabilities:
            top = vqa.probabilities[0]
            reasons.append(
                f"the VQA model's best answer, '{top.label}', has probability {shown(top.probability)}, too low to give"
            )
        if unfamiliar:
            reasons.append(
                f"the image is unlike the images the {unfamiliar} learnt from, so its probability means little here"
            )
    why = "; and ".join(reasons) or "no tool here answers this question about this image"
    needed = "a clinician reading the study" + ("" if model_configured else ", or a language model (VESALIUS_VLM_URL)")
    if patient:
        return "The program cannot tell from this picture. Please ask your doctor, who can look at the images."
    return f"Cannot tell from these tools: {why}; it needs {needed}."
