from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vesalius.agent.answer import Citation
from vesalius.agent.deps import Deps
from vesalius.agent.state import AgentState
from vesalius.retrieval import Hit


def retrieval_query(state: AgentState, deps: Deps) -> str:
    """The question, plus the previous question when this one names no concept ("what does that mean?")."""
    question = state["question"]
    history = state.get("history") or []
    if history and not deps.knowledge().exact(question):
        return f"{question} {history[-1]['question']}"
    return question


CITE_MARGIN = 0.1  # below the best hit's cosine by more than this, a hit is a neighbour of the topic, not the topic


def cited(hits: list[Hit], min_score: float) -> list[Hit]:
    """Concepts written out in the question; failing those, the closest concepts by meaning, if close enough."""
    named = [h for h in hits if h.matched_term]
    if named:
        return named
    close = [h for h in hits if h.dense is not None and h.dense >= min_score]
    if not close:
        return []
    best = max(h.dense for h in close)
    return [h for h in close if h.dense >= best - CITE_MARGIN]


def citation(number: int, hit: Hit) -> Citation:
    c = hit.concept
    definition = c.definition
    return Citation(
        number=number,
        concept_id=c.id,
        name=c.preferred_name,
        umls_cui=c.umls_cui,
        snomed_ct=c.snomed_ct,
        icd10cm=c.icd10cm,
        source=definition.source if definition else c.sources[0].source,
        sources=[f"{ref.source}: {ref.id}" for ref in c.sources],
        link=next((ref.link for ref in c.sources if ref.link), None),
        code_sources=c.code_sources,
        passage=definition.text if definition else c.preferred_name,
        score=round(hit.score, 3),
        dense=None if hit.dense is None else round(hit.dense, 3),
        lexical=None if hit.lexical is None else round(hit.lexical, 3),
        matched_term=hit.matched_term,
        urgency=c.urgency,
    )


MAX_NAMED = 5  # concepts the question names that are cited beyond the search's own top hits


def named_in_question(question: str, hits: list[Hit], deps: Deps) -> list[Hit]:
    """Concepts the question names by a phrase of several words or an abbreviation ("high blood pressure or T2DM")
    that the whole question's search did not rank among its top hits: a short term in a long question gains little
    from the share of words it covers. Single words are left to the search: many are qualifiers ("right")."""
    return _named(
        question,
        {h.concept.id for h in hits},
        MAX_NAMED,
        lambda term, kind: kind == "abbreviation" or " " in term,
        deps,
    )


MAX_CONTEXT_CONCEPTS = 3


def named_in_context(context: str, have: set[str], deps: Deps) -> list[Hit]:
    """Conditions the clinical context names outright ("fever", "known COPD"), for the reader and the model to
    weigh; cited as context, never as what the question asks about (so they raise no urgency banner)."""
    return _named(context, set(have), MAX_CONTEXT_CONCEPTS, lambda term, kind: True, deps)


def _named(text: str, have: set[str], limit: int, wanted: Callable[[str, str], bool], deps: Deps) -> list[Hit]:
    """Up to `limit` concepts whose terms `text` writes out, each found by its own search, none already in `have`."""
    kb = deps.knowledge()
    out: list[Hit] = []
    for _, start, end, term, kind in kb.exact(text):
        if len(out) >= limit:
            break
        if not wanted(term, kind):
            continue
        found = kb.search(text[start:end], k=1)
        if found and found[0].matched_term and found[0].concept.id not in have:
            have.add(found[0].concept.id)
            out.append(found[0])
    return out


def retrieve(state: AgentState, deps: Deps) -> dict[str, Any]:
    s = deps.settings
    hits = deps.knowledge().search(retrieval_query(state, deps), k=s.top_k)
    chosen = cited(hits, s.min_citation_score)
    chosen += named_in_question(state["question"], chosen, deps)
    citations = [citation(n, h) for n, h in enumerate(chosen, start=1)]
    if context := (state.get("context") or {}).get("text"):
        have = {c.concept_id for c in citations}
        for hit in named_in_context(context, have, deps):
            cited_hit = citation(len(citations) + 1, hit)
            citations.append(cited_hit.model_copy(update={"matched_term": None, "found_in": "context"}))
    warnings = list(state.get("warnings") or [])
    if not citations:
        warnings.append("no knowledge passage matched the question closely enough to cite")
    return {"citations": [c.model_dump() for c in citations], "warnings": warnings}


def after_retrieve(state: AgentState, deps: Deps) -> str:
    return "reason" if deps.vlm else "compose"
