"""VQA-RAD in the MEVF layout: `trainset.json` (or `testset.json`), a JSON array of objects with `qid, image_name,
image_organ, answer, answer_type, question_type, question, phrase_type`; images in `images/` beside it."""

from __future__ import annotations

from pathlib import Path

from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, Record, expect_top, images_root, qid_ref, read_json, vqa_fields

NAME = "vqa-rad"

# Typos in the published question types (README of the shared data): normalised so counts by type add up.
_TYPE_FIXES = {"ATRIB": "ATTRIB", "PRSE": "PRES"}


def question_type(raw: str) -> str:
    """ "PRES, ATTRIB" style: each part upper-cased, trimmed and with the published typos fixed."""
    parts = [p.strip().upper() for p in raw.split(",") if p.strip()]
    return ", ".join(_TYPE_FIXES.get(p, p) for p in parts)


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    data = read_json(path)
    expect_top(data, list, path, "an array of questions")
    root = images_root(images, path.parent / "images", path)
    out = Collector(NAME, path, skip_bad)
    for n, raw in enumerate(data, start=1):

        def build(raw: object = raw) -> EvalItem:
            r = Record(raw)
            phrase = r.opt_text("phrase_type")
            return EvalItem(
                id=r.scalar("qid"),
                benchmark=NAME,
                **vqa_fields(r, root, "image_name"),
                question_type=question_type(r.text("question_type")),
                organ_or_modality=r.opt_text("image_organ"),
                extra={"phrase_type": phrase} if phrase else {},
            )

        out.add(qid_ref(n, raw), build)
    return out.result()
