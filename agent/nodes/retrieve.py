from __future__ import annotations

from typing import Any

from agent.answer import Citation
from agent.deps import Deps
from agent.state import AgentState


def retrieval_query(state: AgentState, deps: Deps) -> str:
    """The question, plus the previous question when this one names no concept ("what does that mean?")."""
    question = state["question"]
    history = state.get("history") or []
    if history and not deps.knowledge().exact_matches(question):
        return f"{question} {history[-1]['question']}"
    return question


CITE_MARGIN = 0.2  # cite only hits close to the best one: a distant fifth hit is noise, not evidence


def retrieve(state: AgentState, deps: Deps) -> dict[str, Any]:
    kb = deps.knowledge()
    s = deps.settings
    hits = kb.search(retrieval_query(state, deps), k=s.top_k, min_score=s.min_citation_score)
    hits = [h for h in hits if h.score >= hits[0].score - CITE_MARGIN]
    citations = [
        Citation(
            number=n,
            concept_id=h.concept.id,
            name=h.concept.preferred_name,
            umls_cui=h.concept.umls_cui,
            snomed_ct=h.concept.snomed_ct,
            source=kb.source,
            code_sources=h.concept.code_sources,
            passage=h.concept.definition,
            score=round(h.score, 3),
            matched_term=h.matched_term,
            urgency=h.concept.urgency,
        )
        for n, h in enumerate(hits, start=1)
    ]
    warnings = list(state.get("warnings") or [])
    if not citations:
        warnings.append("no knowledge passage matched the question closely enough to cite")
    return {"citations": [c.model_dump() for c in citations], "warnings": warnings}


def after_retrieve(state: AgentState, deps: Deps) -> str:
    return "reason" if deps.vlm else "compose"
