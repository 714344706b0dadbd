"""PMC-VQA multiple choice, as published (`train.csv`, `test.csv`, `test_clean.csv`): CSV columns `Figure_path,
Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label`; images in `images/` beside the file.

Choices are published as "A:text"; the letter prefix is removed from the option text. Empty choices are left out.
The id is the `index` column where the file has one, else the data row number (1-based, header not counted)."""

from __future__ import annotations

import re
from pathlib import Path

from vesalius.eval.errors import ItemProblem
from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, Record, csv_rows, image_path, images_root

NAME = "pmc-vqa"
LETTERS = ("A", "B", "C", "D")
COLUMNS = ("Figure_path", "Question", "Answer", *(f"Choice {x}" for x in LETTERS), "Answer_label")
_PREFIX = re.compile(r"^\s*([A-D])\s*[:.)]\s*")


def _option(letter: str, cell: str) -> str:
    m = _PREFIX.match(cell)
    if m and m.group(1) != letter:
        raise ItemProblem(f"its 'Choice {letter}' starts with the letter {m.group(1)}")
    return (cell[m.end() :] if m else cell).strip()


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    rows = csv_rows(path, COLUMNS)
    root = images_root(images, path.parent / "images", path)
    out = Collector(NAME, path, skip_bad)
    for row_number, (line, raw) in enumerate(rows, start=1):

        def build(raw: object = raw, row_number: int = row_number) -> EvalItem:
            r = Record(raw)
            cells: dict[str, str] = r.raw
            name = r.text("Figure_path").strip()
            options = {x: _option(x, cells[f"Choice {x}"]) for x in LETTERS if cells[f"Choice {x}"].strip()}
            label = r.text("Answer_label").strip().upper()
            index = cells.get("index", "").strip()
            return EvalItem(
                id=index or str(row_number),
                benchmark=NAME,
                question=r.text("Question"),
                answer=label,
                answers=(r.text("Answer").strip(),),
                kind="choice",
                options=options,
                image=image_path(root, name),
                group=name,
                language="en",
            )

        out.add(f"line {line}", build)
    return out.result()
