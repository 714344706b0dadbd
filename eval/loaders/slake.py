"""SLAKE 1.0: `train.json` / `validate.json` / `test.json`, a JSON array of objects with `qid, img_id, img_name,
question, answer, q_lang (en/zh), location, modality, answer_type OPEN/CLOSED, base_type, content_type, triple`;
images in `imgs/` beside the file (`img_name` is `xmlabN/source.jpg`).

`slake-questions` loads the same file without images (`image` is None, `group` still the image name): the shared
copy of SLAKE has no images, and questions alone serve parsing, routing and bilingual tests. It is a separate name,
not a silent fallback, so a VQA run never scores questions whose images are missing."""

from __future__ import annotations

from pathlib import Path

from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import (
    Collector,
    Record,
    expect_top,
    images_root,
    no_images,
    qid_ref,
    read_json,
    vqa_fields,
)

NAME = "slake"
QUESTIONS_NAME = "slake-questions"


def _load(path: Path, images: Path | None, skip_bad: bool, *, with_images: bool) -> Loaded:
    data = read_json(path)
    expect_top(data, list, path, "an array of questions")
    root = images_root(images, path.parent / "imgs", path) if with_images else None
    out = Collector(NAME if with_images else QUESTIONS_NAME, path, skip_bad)
    for n, raw in enumerate(data, start=1):

        def build(raw: object = raw) -> EvalItem:
            r = Record(raw)
            language = r.text("q_lang").strip().lower()
            extra = {k: str(r.raw[k]) for k in ("img_id", "modality", "base_type") if r.has(k)}
            return EvalItem(
                id=r.scalar("qid"),
                benchmark=out.benchmark,
                **vqa_fields(r, root, "img_name"),
                question_type=r.opt_text("content_type"),
                organ_or_modality=r.opt_text("location"),
                language=language,
                extra=extra,
            )

        out.add(qid_ref(n, raw), build)
    return out.result()


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    return _load(path, images, skip_bad, with_images=True)


def load_questions(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    no_images(images, QUESTIONS_NAME)
    return _load(path, None, skip_bad, with_images=False)
