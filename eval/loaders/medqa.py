"""MedQA (USMLE) as JSONL: one object per line with `question`, `options` (letter -> text), `answer_idx` (the gold
letter) and `answer` (its text); `meta_info` kept. The id is `realidx` where the line has one (MedAgents' export),
else "L" and the line number."""

from __future__ import annotations

from pathlib import Path

from vesalius.eval.errors import ItemProblem
from vesalius.eval.items import EvalItem, Loaded
from vesalius.eval.loaders._read import Collector, Record, jsonl_lines, no_images, parse_json

NAME = "medqa"


def load(path: Path, images: Path | None = None, *, skip_bad: bool = False) -> Loaded:
    no_images(images, NAME)
    out = Collector(NAME, path, skip_bad)
    for line, text in jsonl_lines(path):

        def build(text: str = text, line: int = line) -> EvalItem:
            r = Record(parse_json(text, line))
            options = {k.strip(): v for k, v in r.text_map("options").items()}
            letter = r.text("answer_idx").strip()
            if letter not in options:
                raise ItemProblem(f"its answer_idx {letter!r} is not one of the options {', '.join(options)}")
            answer = r.text("answer")
            # The text and the letter are published side by side; if they disagree the gold answer is unknown.
            if answer.strip() != options[letter].strip():
                raise ItemProblem(f"its answer {answer!r} is not the text of option {letter}")
            meta = r.opt_text("meta_info")
            return EvalItem(
                id=r.scalar("realidx") if r.has("realidx") else f"L{line}",
                benchmark=NAME,
                question=r.text("question"),
                answer=letter,
                answers=(answer,),
                kind="choice",
                options=options,
                language="en",
                extra={"meta_info": meta} if meta else {},
            )

        out.add(f"line {line}", build)
    return out.result()
