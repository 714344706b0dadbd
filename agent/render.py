"""Results as text for a terminal. An answer: urgent notes first, then study, tools, answer, uncertainty,
citations; and the other results the command line prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vesalius.agent.answer import Answer
from vesalius.vision.deid_record import DeidRecord
from vesalius.vision.models.probability import shown

if TYPE_CHECKING:
    from vesalius.agent.batch import ImageRecord
    from vesalius.agent.inspect import Inspection
    from vesalius.retrieval.concepts import Concept
    from vesalius.retrieval.search import Hit, KnowledgeBase
    from vesalius.vision.tools.registry import ToolDeclaration


def codes_line(umls: str | None, snomed: list[str], icd10cm: list[str]) -> str:
    codes = [
        f"UMLS {umls}" if umls else "",
        *(f"SNOMED CT {c}" for c in snomed[:2]),
        *(f"ICD-10-CM {c}" for c in icd10cm[:2]),
    ]
    return " · ".join(c for c in codes if c) or "no codes"


def deid_line(record: DeidRecord) -> str:
    changed = len(record.removed) + len(record.emptied) + len(record.replaced)
    return (
        f"{changed} identifying attributes removed or blanked, {record.uids_replaced} UIDs replaced, "
        f"{record.private_removed} private tags removed, dates {record.dates} ({record.profile})"
    )


def render_text(a: Answer) -> str:
    out: list[str] = []
    if a.urgent:
        out += ["URGENT", *(f"  ! {note}" for note in a.urgent), ""]
    out += [a.direct_answer, ""]
    out += [f"Study    {a.study.one_line() if a.study else 'none'}", f"Shown    {a.shown}"]
    if a.deidentification:
        out.append(f"De-id    {deid_line(a.deidentification)}")
    if a.study_kind:
        out.append(f"Kind     {a.study_kind.described()}")
    out += [f"Thread   {a.thread_id} (turn {a.turn})", "", "Tools"]
    for t in a.tools:
        if t.applied:
            out.append(f"  + {t.tool}: {t.summary}")
            out += [
                f"      region ({r.x},{r.y}) {r.width}x{r.height} px, score {r.score:g} {r.unit}, {r.side}"
                for r in t.regions
            ]
            if t.model:
                out.append(f"      model: {t.model.name} {t.model.version}, validation {t.model.validation}")
            if t.heatmap_path:
                out.append(f"      heatmap: {t.heatmap_path}")
            out += [f"      caveat: {c}" for c in t.caveats]
        else:
            out.append(f"  - {t.tool}: not run ({t.reason})")
    if c := a.comparison:
        out += ["", f"Compared with the prior study {c.prior_study_id} ({c.prior_from})"]
        out += [f"  {ch.tool}: {ch.prior} -> {ch.current}: {ch.change}" for ch in c.changes]
        if c.note:
            out.append(f"  note: {c.note}")
    source = f"model {a.model.name}" if a.model.used else "tools and knowledge base, no language model"
    out += ["", f"Answer   ({source})"]
    body = a.answer.removeprefix(a.direct_answer).lstrip("\n")  # the direct answer is already the first line shown
    out += [f"  {line}" if line else "" for line in body.splitlines()]
    evidenced = [c for c in a.claims if c.evidence or not c.supported]
    if evidenced:
        out += ["", "Claims   (each sentence and what supports it; ? = nothing here supports it)"]
        for claim in evidenced:
            refs = ", ".join(dict.fromkeys(e.ref for e in claim.evidence)) or "no support found"
            mark = "?" if not claim.supported else "·"
            text = claim.sentence if len(claim.sentence) <= 80 else claim.sentence[:77] + "..."
            out.append(f"  {mark} {text}  <- {refs}")
    out += ["", f"Uncertainty  {a.uncertainty}"]
    if a.citations:
        out += ["", "Citations"]
        for c in a.citations:
            out.append(
                f"  [{c.number}] {c.name} — {codes_line(c.umls_cui, c.snomed_ct, c.icd10cm)} — {c.source} "
                f"(score {c.score:.2f})"
            )
        out.append(f"  knowledge base {a.knowledge_base}")
    if a.warnings:
        out += ["", "Warnings", *(f"  * {w}" for w in a.warnings)]
    return "\n".join(out)


def render_inspection(report: Inspection) -> str:
    summary = report.summary
    out = [f"Study     {summary.one_line()}", f"Source    {summary.source_kind} · {summary.transfer_syntax or '-'}"]
    if summary.stored_windows:
        out.append(f"Windows   stored in the file: {'; '.join(w.label() for w in summary.stored_windows)}")
    out.append(f"Presets   {', '.join(report.window_presets)} (choose with --window)")
    if record := report.deidentification:
        out.append(f"De-id     {deid_line(record)}")
        if record.removed or record.emptied or record.replaced:
            out.append(
                f"          attributes: {', '.join(sorted({*record.removed, *record.emptied, *record.replaced}))}"
            )
    images = report.images
    shown_images = images if len(images) <= 6 else [*images[:3], f"... {len(images) - 6} more ...", *images[-3:]]
    out.append(f"Images    {len(images)}: {', '.join(shown_images)}")
    out += [f"Warning   {w}" for w in report.warnings]
    out += [f"Wrote     {p}" for p in report.written]
    return "\n".join(out)


def record_line(record: ImageRecord) -> str:
    """One line per image for people: kind, then each model's output or why it did not run."""
    if record.error or record.kind is None:
        return f"{record.path}: error: {record.error}"
    parts = [f"{record.path}: {record.kind.described()}"]
    for tool, probs in record.probabilities.items():
        parts += [f"{tool} P({p.label}) {shown(p.probability)}{' *' if p.flagged else ''}" for p in probs]
    for tool, a in record.anomaly.items():
        parts.append(
            f"{tool} score {a.score:.3f} ({'unusual' if a.unusual else 'normal range'}, "
            f"{len(a.regions)} region(s){', ' + a.heatmap_path if a.heatmap_path else ''})"
        )
    parts += [f"{tool} not run: {why}" for tool, why in record.not_applied.items()]
    return " | ".join(parts)


def render_tool(d: ToolDeclaration) -> str:
    return (
        f"{d.name} ({d.source})\n  {d.description}\n  applies to: {d.applies_to}\n"
        f"  answers: {', '.join(d.answers)}; outputs: {', '.join(d.outputs)}"
    )


def render_hits(query: str, hits: list[Hit]) -> str:
    out = [query]
    for r, h in enumerate(hits, start=1):
        c = h.concept
        codes = " ".join([*(f"SCTID:{x}" for x in c.snomed_ct[:2]), *(f"ICD10CM:{x}" for x in c.icd10cm[:2])])
        why = f" (named: {h.matched_term!r})" if h.matched_term else ""
        out.append(f"  {r:2d}. {c.id:<14} {c.preferred_name}  {codes}  score {h.score:.3f}{why}")
    if not hits:
        out.append("  (nothing found)")
    return "\n".join(out)


def hit_record(rank: int, hit: Hit) -> dict:
    """A search hit as one JSON object (`kb search --json`)."""
    c = hit.concept
    return {
        "rank": rank,
        "concept_id": c.id,
        "umls_cui": c.umls_cui,
        "name": c.preferred_name,
        "snomed_ct": c.snomed_ct,
        "icd10cm": c.icd10cm,
        "semantic_types": c.semantic_types,
        "sources": [f"{ref.source}: {ref.id}" for ref in c.sources],
        "score": hit.score,
        "dense": hit.dense,
        "lexical": hit.lexical,
        "matched_term": hit.matched_term,
    }


def render_concept(c: Concept, knowledge: KnowledgeBase) -> str:
    out = [f"{c.preferred_name}  [{c.id}]"]
    out.append(f"  codes: {', '.join(c.codes) or 'none'}")
    if c.semantic_types:
        out.append(f"  semantic types: {', '.join(c.semantic_types)}")
    if c.urgency:
        out.append(f"  urgency when newly found on imaging: {c.urgency}")
    if c.synonyms:
        more = f" (+{len(c.synonyms) - 15} more)" if len(c.synonyms) > 15 else ""
        out.append(f"  synonyms: {'; '.join(c.synonyms[:15])}{more}")
    for d in c.definitions:
        out.append(f"  definition ({d.source}): {d.text}")
    if c.plain_language:
        out.append(f"  in plain words: {c.plain_language}")
    for modality, text in c.appearance.items():
        out.append(f"  on {modality}: {text}")
    for rel in c.relations[:20]:
        target = knowledge.concept(rel.target)
        name = target.preferred_name if target else rel.target_name or "not in this knowledge base"
        out.append(f"  {rel.kind.replace('_', ' ')}: {name} [{target.id if target else rel.target}]")
    for ref in c.sources:
        out.append(f"  source: {ref.source} {ref.id}{f' {ref.link}' if ref.link else ''}")
    return "\n".join(out)


def render_knowledge_info(m: dict) -> str:
    out = [f"{m['version']} (built {m['created']}): {m['concepts']} concepts, {m['dense_rows']} embedded texts"]
    out += [f"  {source}: {n} records" for source, n in m["sources"].items()]
    out.append(f"  dense index: {m['dense_index']}; embedding model {m['embedding_model']['id']}")
    out.append(f"  malformed input lines: {m['problems']['summary']}")
    return "\n".join(out)
