"""PathVQA as a JSON array of objects with `image, question, answer, question_type, answer_type OPEN/CLOSED`, where
`image` is relative to the images folder, by default the data file's own folder (`images/<hash>.jpg`).

The format has no question id, and the published subset repeats some (image, question, answer) rows, so an item's id
is its position in the array (1-based): stable for a given file."""

from __future__ import annotations

from pathlib import Path

from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, Record, expect_top, images_root, read_json, vqa_fields

NAME = "pathvqa"


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    data = read_json(path)
    expect_top(data, list, path, "an array of questions")
    root = images_root(images, path.parent, path)
    out = Collector(NAME, path, skip_bad)
    for n, raw in enumerate(data, start=1):

        def build(raw: object = raw, n: int = n) -> EvalItem:
            r = Record(raw)
            return EvalItem(
                id=str(n),
                benchmark=NAME,
                **vqa_fields(r, root, "image"),
                question_type=r.opt_text("question_type"),
            )

        out.add(f"item {n}", build)
    return out.result()
