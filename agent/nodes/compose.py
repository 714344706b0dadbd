"""Compose the final answer: urgent notes first, then the answer, the uncertainty, and the citations."""

from __future__ import annotations

import re
from typing import Any

from vesalius.agent.answer import Answer, Citation, LinkedConcept, ModelUse
from vesalius.agent.claims import claims, without_unsupported
from vesalius.agent.compare import Comparison, asks_to_compare, comparison_lead, findings
from vesalius.agent.context import ClinicalContext, asks_about_context, context_answer, disagreements
from vesalius.agent.deps import Deps
from vesalius.agent.direct import direct_answer
from vesalius.agent.follow_up import FollowUp, follow_up_lead
from vesalius.agent.nodes.tools import NOT_NEEDED
from vesalius.agent.prompt import SYSTEM, describe_view
from vesalius.agent.router import RoutePlan
from vesalius.agent.safety import screen
from vesalius.agent.short_answer import from_model, short_answer
from vesalius.agent.state import AgentState
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import shown
from vesalius.vision.tools import not_applied
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

NO_STUDY = "no study: a question about medicine, answered from the knowledge base"
NO_STUDY_REASON = "no study in this conversation"
NO_MODEL_NOTE = "No language model was used: this answer is composed from the tool measurements and the knowledge base."
_MAX_MODEL_CHARS = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufffd]")


def clean_model_text(text: str) -> str:
    """Model output is untrusted: drop control characters and runaway whitespace, bound its length."""
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text[:_MAX_MODEL_CHARS] + (" [truncated]" if len(text) > _MAX_MODEL_CHARS else "")


_URGENCY = {"emergency": "is an emergency when present", "urgent": "needs prompt attention when present"}


def model_alerts(tools: list[ToolResult], audience: str) -> list[str]:
    """A trained model above its screening threshold comes first: probabilities, never a verdict."""
    notes = []
    for t in tools:
        for p in t.probabilities:
            if t.applied and p.flagged and t.tool != VQA_TOOL:  # an answer, not a finding
                advice = (
                    "please see a clinician soon to have the image and your symptoms checked"
                    if audience == "patient"
                    else "correlate clinically and review the film"
                )
                notes.append(
                    f"{t.tool}: probability of {p.label} {shown(p.probability)}, above its screening threshold "
                    f"{p.threshold:.2f} (a likelihood from a model, not a diagnosis): {advice}."
                )
    return notes


def urgent_notes(citations: list[Citation], plan: RoutePlan) -> list[str]:
    """Urgency of the conditions a question about this study names outright. A question about a term only
    ("what does X mean?") gets the urgency inside the definition instead: a banner there would alarm for nothing."""
    if plan.intent == "explain":
        return []
    audience = plan.audience
    notes = []
    for c in citations:
        if c.matched_term is None or c.urgency in (None, "routine"):
            continue
        if c.urgency == "emergency":
            who = "call emergency services or go to an emergency department" if audience == "patient" else "act now"
        else:
            who = "see a clinician within a day or so" if audience == "patient" else "arrange prompt assessment"
        notes.append(f"{c.name} {_URGENCY[c.urgency]}: if it is suspected, {who} [{c.number}].")
    return notes


def _tools_text(tools: list[ToolResult]) -> list[str]:
    ran = [t for t in tools if t.applied]
    if not ran:
        return ["No image tool applied to this question and study."]
    return [f"{t.tool}: {t.summary}." for t in ran]


def unrecognised_note(kind: StudyKind | None) -> str | None:
    """When the gate did not recognise the image, that is the answer to any question about what it shows."""
    if kind is None or kind.accepted:
        return None
    return (
        f"No trained model read this image: it is {kind.described()}. Nothing here can say what it shows; "
        "open the original study (the DICOM file or a full export) to have it assessed."
    )


def deterministic_answer(
    plan: RoutePlan, tools: list[ToolResult], citations: list[Citation], kind: StudyKind | None = None
) -> str:
    if plan.audience == "patient":
        return patient_answer(plan, tools, citations, kind)
    parts = [NO_MODEL_NOTE, ""]
    unrecognised = unrecognised_note(kind) if plan.intent != "explain" else None
    if unrecognised:
        parts += [unrecognised, ""]
    if plan.intent != "explain":
        parts += ["What the image tools measured:", *(f"- {line}" for line in _tools_text(tools)), ""]
    named = unchecked(tools, citations)
    if named and plan.intent != "explain" and not unrecognised:
        names = ", ".join(c.name.lower() for c in named)
        parts += [f"No tool here detects {names}: the measurements above neither show nor exclude it.", ""]
    if citations:
        parts.append("What the knowledge base says about the terms in the question:")
        for c in citations:
            urgency = (
                f" ({c.name} {_URGENCY[c.urgency]}.)" if plan.intent == "explain" and c.urgency in _URGENCY else ""
            )
            parts.append(f"- {c.name} [{c.number}]: {c.passage}{urgency}")
    return "\n".join(parts).strip()


def unchecked(tools: list[ToolResult], citations: list[Citation]) -> list[Citation]:
    """The concepts the question names that no trained tool here estimated."""
    estimated = {p.label.lower() for t in tools if t.applied and t.tool != VQA_TOOL for p in t.probabilities}
    return [c for c in citations if c.matched_term and not any(label in c.name.lower() for label in estimated)]


PATIENT_CLOSE = (
    "This is general information, not a diagnosis. Please go through your images and results with your doctor."
)
PATIENT_CLOSE_NO_STUDY = (
    "This is general information, not a diagnosis. Please talk to your doctor about what it means for you."
)


def patient_answer(
    plan: RoutePlan, tools: list[ToolResult], citations: list[Citation], kind: StudyKind | None = None
) -> str:
    """The same answer in plain words: short sentences, no tool names or units, what the words in the question
    mean, and the advice to see a doctor. The measurements stay in the details for the clinician."""
    parts = [
        "A computer program wrote this answer from measurements of your image and a medical reference. No doctor has checked it."
        if kind is not None or any(t.applied for t in tools)
        else "A computer program wrote this answer from a medical reference. No doctor has checked it.",
        "",
    ]
    if plan.intent != "explain":
        if unrecognised_note(kind):
            parts += ["The program could not read this kind of picture, so it cannot say what it shows.", ""]
        elif any(t.applied for t in tools):
            for t in tools:
                for p in t.probabilities if t.applied and t.model is not None and t.tool != VQA_TOOL else []:
                    chance = f"about {min(99, max(1, round(p.probability * 100)))} in 100"
                    line = f"A program trained to spot {p.label} on pictures like this one puts the chance at {chance}."
                    if p.in_training_range is False:
                        line += " But this picture is unlike the ones it learnt from, so that number means little here."
                    parts.append(line)
            parts += ["The program measured your image. The numbers are listed for your doctor below this answer.", ""]
        if named := ", ".join(c.name.lower() for c in unchecked(tools, citations)):
            parts += [f"The program here cannot check for {named}. So it can neither find it nor rule it out.", ""]
    if citations:
        parts.append("What the words in your question mean:")
        parts += [f"- {c.name} [{c.number}]: {c.passage}" for c in citations]
        parts.append("")
    no_study = all(t.reason == NO_STUDY_REASON for t in tools)
    parts.append(PATIENT_CLOSE_NO_STUDY if no_study else PATIENT_CLOSE)
    return "\n".join(parts).strip()


def uncertainty_statement(source: str, tools: list[ToolResult], model_name: str | None, patient: bool = False) -> str:
    if tools and all(t.reason == NO_STUDY_REASON for t in tools):
        if patient:
            return (
                "This is general information from a medical reference. It cannot tell what is happening in your own "
                "body: only a doctor who knows you can."
            )
        wrote = (
            f"The answer text was written by the language model {model_name}, which can be wrong; "
            if source == "model"
            else ""
        )
        return (
            f"{wrote}No image was looked at: this is reference knowledge from the sources cited, not a reading of a "
            "patient's study. Nothing here is a diagnosis."
        )
    if patient:
        wrote = "A language program wrote part of this answer, and it can make mistakes. " if source == "model" else ""
        return (
            f"{wrote}Computer programs can be wrong, most of all on pictures unlike the ones they learnt from. "
            "Only a doctor who knows you can say what your images mean for you."
        )
    heuristic = any(t.applied and t.caveats and t.model is None for t in tools)
    trained = [t for t in tools if t.applied and t.model is not None]
    base = "Nothing here is a diagnosis: a clinician must interpret the study."
    if trained:
        validation = "; ".join(f"{t.model.name}: {t.model.validation}" for t in trained)
        base = (
            "The probabilities and anomaly scores come from small models trained on public data and calibrated on "
            f"validation images ({validation}); they hold for images like their training data, and their known "
            f"limitations are listed with each result. {base}"
        )
    if source == "model":
        return (
            f"The answer text was written by the language model {model_name}, which can be wrong or invent details; "
            f"check it against the measurements and sources listed. {base}"
        )
    detail = (
        " The heuristic image tools are measurements, not trained detectors, so they neither confirm nor rule out any disease."
        if heuristic
        else ""
    )
    if trained:
        return f"{base} {detail.strip()}".strip()
    return f"No model estimated the probability of any condition on this study.{detail} {base}"


def patient_plain_passages(citations: list[Citation], deps: Deps) -> list[Citation]:
    """The plain-language explanation where the project wrote one; other sources' definitions stay as they are."""
    kb = deps.knowledge()
    out = []
    for c in citations:
        concept = kb.concept(c.concept_id)
        plain = concept.plain_language if concept else None
        out.append(c.model_copy(update={"passage": plain, "source": _imaging_source(concept)}) if plain else c)
    return out


def _imaging_source(concept) -> str:
    return next(ref.source for ref in concept.sources if ref.id.startswith("VESALIUS:"))


def screened_passages(citations: list[Citation], warnings: list[str]) -> list[Citation]:
    """Passages are quoted in answers: one from a knowledge source that carries a dose, a certainty or
    instructions to the assistant is quoted without those sentences, and a warning says so."""
    out = []
    for c in citations:
        kept, broken = screen(c.passage, SYSTEM)
        if broken:
            warnings.append(f"a sentence of the passage for {c.name} was left out: it broke the answer rules")
            c = c.model_copy(update={"passage": kept or "(left out: it broke the answer rules)"})
        out.append(c)
    return out


def knowledge_base_line(deps: Deps) -> str:
    kb = deps.knowledge()
    return f"{kb.version} ({len(kb)} concepts from {', '.join(kb.source_names)})"


def linked_concepts(text: str, where: str, deps: Deps) -> list[LinkedConcept]:
    return [
        LinkedConcept(
            where=where,
            text=link.text,
            start=link.start,
            end=link.end,
            concept_id=link.concept.id,
            umls_cui=link.concept.umls_cui,
            name=link.concept.preferred_name,
            method=link.method,
            score=link.score,
        )
        # The answer's own words are not guessed at: only its terms written out are linked.
        for link in deps.knowledge().link(text, fallback=where == "question")
    ]


def compose(state: AgentState, deps: Deps) -> dict[str, Any]:
    plan = RoutePlan.model_validate(state["plan"])
    tools = [ToolResult.model_validate(t) for t in state.get("tool_results") or []]
    if not tools:  # retrieval-only route: still say which tools exist and why they were not run
        why = NOT_NEEDED if state.get("study_path") else NO_STUDY_REASON
        tools = [not_applied(tool, why) for tool in deps.registry.tools.values()]
    citations = [Citation.model_validate(c) for c in state.get("citations") or []]
    if plan.audience == "patient":
        citations = patient_plain_passages(citations, deps)
    warnings = list(state.get("warnings") or [])
    citations = screened_passages(citations, warnings)
    kind = StudyKind.model_validate(state["study_kind"]) if state.get("study_kind") else None
    reply = state.get("model_reply")
    text = clean_model_text(reply["text"]) if reply else ""
    if text:
        text, broken = screen(text, SYSTEM)
        warnings += [f"the model's answer: {b}" for b in broken]
    if reply and not text:
        warnings.append("the model returned no usable text; answered from the tools and the knowledge base instead")
    if text:
        source, model = (
            "model",
            ModelUse(
                used=True,
                name=reply["model"],
                prompt_tokens=reply.get("prompt_tokens"),
                completion_tokens=reply.get("completion_tokens"),
                image_parts=state.get("model_image_parts", 0),
            ),
        )
        if reply.get("finish_reason") == "length":
            warnings.append("the model's answer was cut off at the token limit (raise VESALIUS_VLM_MAX_TOKENS)")
        if note := unrecognised_note(kind):
            warnings.append(note)  # the model may describe a picture no trained model could read
        unknown = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)} - {c.number for c in citations})
        if unknown:
            warnings.append(f"the model cited {', '.join(f'[{n}]' for n in unknown)}, which are not among the sources")
    else:
        source, model = "tools_and_knowledge", ModelUse(used=False)
        text = deterministic_answer(plan, tools, citations, kind)
    # Evidence from the study comes before the language model's word.
    short = short_answer(state["question"], kind, tools) or (from_model(text, model.name or "") if model.used else None)
    first = next(((c.name, c.passage, c.number) for c in citations if c.matched_term), None)
    direct = direct_answer(
        short,
        tools,
        kind,
        patient=plan.audience == "patient",
        explain=plan.intent == "explain",
        first_passage=first,
        model_configured=deps.vlm is not None,
        question=state["question"],
    )
    patient = plan.audience == "patient"
    context = ClinicalContext.model_validate(state["context"]) if state.get("context") else None
    if context is not None:  # what the user told us, shown back de-identified, and where it and the tools differ
        told = "What you told the program" if patient else "Clinical context given (de-identified)"
        text += f"\n\n{told} [context]: {context.text}"
        text += "".join(f"\n{line}" for line in disagreements(context.text, tools))
    follow_up = FollowUp.model_validate(state["follow_up"]) if state.get("follow_up") else None
    comparison = Comparison.model_validate(state["comparison"]) if state.get("comparison") else None
    lead = follow_up_lead(follow_up, tools, patient) if follow_up else None
    if comparison is not None:
        compared = comparison_lead(comparison, patient)
        if lead is None and asks_to_compare(state["question"]):
            lead = compared
        else:
            text = f"{text}\n\n{compared}"
    if lead:  # what a follow-up asks about the evidence comes first; the fresh reading of the image after it
        direct = f"{lead} {direct}" if follow_up and follow_up.kind == "side" else lead
    elif context is not None and asks_about_context(state["question"]):  # "what did the earlier report say?"
        direct = context_answer(context.text, patient)
    study = deps.view(state)
    found = claims(
        direct,
        text,
        model.name if model.used else None,
        tools,
        citations,
        study.summary if study else None,
        context.text if context else None,
    )
    if model.used and (unsupported := [c for c in found if not c.supported]):
        if deps.settings.unsupported_sentences == "remove":
            text = without_unsupported(text, found)
            found = [c for c in found if c.supported]
            warnings.append(f"{len(unsupported)} sentence(s) of the model's with no support here were left out")
        else:
            warnings.append(
                f"{len(unsupported)} sentence(s) of the model's have no support in the tools, the study or the "
                "sources (marked '?' under Claims)"
            )
    text = f"{direct}\n\n{text}"
    history = state.get("history") or []
    answer = Answer(
        thread_id=state["thread_id"],
        turn=len(history) + 1,
        question=state["question"],
        study=study.summary if study else None,
        shown=describe_view(study, state.get("view") or {}) if study else NO_STUDY,
        deidentification=study.deid if study else None,
        route=plan,
        study_kind=state.get("study_kind"),
        tools=tools,
        urgent=[*model_alerts(tools, plan.audience), *urgent_notes(citations, plan)],
        short_answer=short,
        direct_answer=direct,
        answer=text,
        answer_source=source,
        model=model,
        uncertainty=uncertainty_statement(source, tools, model.name, patient=plan.audience == "patient"),
        citations=citations,
        knowledge_base=knowledge_base_line(deps),
        linked_concepts=[
            *linked_concepts(state["question"], "question", deps),
            *linked_concepts(text, "answer", deps),
            *(linked_concepts(context.text, "context", deps) if context else []),
        ],
        warnings=[*(study.warnings if study else ()), *deps.registry.problems, *warnings],
        follow_up=follow_up,
        comparison=comparison,
        claims=found,
        context=context,
    )
    turn = {
        "turn": answer.turn,
        "question": state["question"],
        "answer": text,
        "concepts": [c.concept_id for c in citations],
        # What a later turn needs: the question as routed (for the next follow-up), and what was measured on which
        # study (for a comparison after the study has changed, or gone).
        "routed": state.get("routed_question") or state["question"],
        "study_id": study.summary.study_id if study else None,
        "findings": findings(tools),
    }
    return {"answer": answer.model_dump(mode="json"), "history": [turn]}
