"""The answer as text for a terminal: urgent notes first, then study, tools, answer, uncertainty, citations."""

from __future__ import annotations

from vesalius.agent.answer import Answer
from vesalius.vision.deid import DeidRecord


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
    out += [f"Study    {a.study.one_line()}", f"Shown    {a.shown}"]
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
    source = f"model {a.model.name}" if a.model.used else "tools and knowledge base, no language model"
    out += ["", f"Answer   ({source})"]
    out += [f"  {line}" if line else "" for line in a.answer.splitlines()]
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
