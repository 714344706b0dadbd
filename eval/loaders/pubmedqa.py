"""PubMedQA PQA-L (`ori_pqal.json` and its dev/test parts): one JSON object keyed by PMID, each value with
`QUESTION`, `CONTEXTS` (abstract sections), `LABELS` (their headings), `MESHES`, `YEAR`, `final_decision`
(yes/no/maybe) and `LONG_ANSWER`. The item id is the PMID; the context is the sections, each under its heading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vesalius.eval.errors import ItemProblem
from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, DupObject, Record, expect_top, no_images, read_json

NAME = "pubmedqa"
DECISIONS = ("yes", "no", "maybe")


def _context(contexts: list[str], labels: list[str]) -> str:
    if len(labels) == len(contexts):
        return "\n\n".join(f"{label}: {text}" for label, text in zip(labels, contexts, strict=True))
    return "\n\n".join(contexts)


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    no_images(images, NAME)
    data = read_json(path)
    expect_top(data, dict, path, "an object keyed by PMID")
    # A PMID given twice would be silently collapsed by json; DupObject keeps both so the second is reported.
    pairs: list[tuple[str, Any]] = data.pairs if isinstance(data, DupObject) else list(data.items())
    out = Collector(NAME, path, skip_bad)
    for pmid, raw in pairs:

        def build(pmid: str = pmid, raw: object = raw) -> EvalItem:
            if not pmid.strip():
                raise ItemProblem("its PMID key is empty")
            r = Record(raw)
            decision = r.text("final_decision").strip().lower()
            if decision not in DECISIONS:
                raise ItemProblem(f"its final_decision {r.raw['final_decision']!r} is not yes, no or maybe")
            contexts = r.text_list("CONTEXTS")
            labels = r.text_list("LABELS") if r.has("LABELS") else []
            extra = {"long_answer": r.text("LONG_ANSWER", empty_ok=True)} if r.has("LONG_ANSWER") else {}
            if r.has("YEAR"):
                extra["year"] = r.scalar("YEAR")
            if r.has("MESHES"):
                extra["meshes"] = "; ".join(r.text_list("MESHES"))
            return EvalItem(
                id=pmid,
                benchmark=NAME,
                question=r.text("QUESTION"),
                answer=decision,
                kind="closed",
                context=_context(contexts, labels) if contexts else None,
                language="en",
                extra=extra,
            )

        out.add(f"PMID {pmid!r}", build)
    return out.result()
