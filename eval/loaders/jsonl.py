"""The generic benchmark format: JSONL, one object per line (blank lines ignored).

Required: `id` (text or integer, unique), `answer` (text or number), `kind` ("closed", "open", "choice" or
"label"), and `question` (text; may be empty for "label" items). Optional: `answers` (array of further accepted
answers), `options` (object letter -> text; required for "choice", where `answer` is the gold letter), `image`
(path relative to the images folder, by default the file's own folder), `group` (defaults to `image`, else the
id), `question_type`, `organ_or_modality`, `language` ("en" default, or "zh"), `context`, `label` (integer) and
`classes` (array of text; both required for "label"), `split`, `extra` (object of text). Any other field is an
error, so a misspelt field name is not silently ignored."""

from __future__ import annotations

from pathlib import Path

from vesalius.eval.errors import ItemProblem
from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, Record, image_path, images_root, jsonl_lines, parse_json

NAME = "jsonl"
FIELDS = (
    "id",
    "question",
    "answer",
    "kind",
    "answers",
    "options",
    "image",
    "group",
    "question_type",
    "organ_or_modality",
    "language",
    "context",
    "label",
    "classes",
    "split",
    "extra",
)


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    lines = list(jsonl_lines(path))  # reads and checks the file before the images folder
    root: Path | None = None
    out = Collector(NAME, path, skip_bad)
    for line, text in lines:

        def build(text: str = text, line: int = line) -> EvalItem:
            nonlocal root
            r = Record(parse_json(text, line))
            unknown = sorted(set(r.raw) - set(FIELDS))
            if unknown:
                raise ItemProblem(f"it has the unknown field(s) {', '.join(unknown)}")
            image = None
            if r.has("image"):
                root = root or images_root(images, path.parent, path)  # only a file with images needs the folder
                image = image_path(root, r.text("image"))
            item_id = r.scalar("id")
            return EvalItem(
                id=item_id,
                benchmark=NAME,
                question=r.text("question", empty_ok=True),
                answer=r.scalar("answer"),
                kind=r.text("kind"),  # checked by EvalItem
                answers=tuple(r.text_list("answers")) if r.has("answers") else (),
                options=r.text_map("options") if r.has("options") else {},
                image=image,
                group=r.opt_text("group") or (r.text("image") if image else item_id),
                question_type=r.opt_text("question_type"),
                organ_or_modality=r.opt_text("organ_or_modality"),
                language=r.opt_text("language") or "en",
                context=r.opt_text("context"),
                label=r.integer("label") if r.has("label") else None,
                classes=tuple(r.text_list("classes")) if r.has("classes") else (),
                split=r.opt_text("split"),
                extra=r.text_map("extra") if r.has("extra") else {},
            )

        out.add(f"line {line}", build)
    return out.result()
