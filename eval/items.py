"""What a benchmark loader yields: one `EvalItem` per question (or per image, for classification), the items that
were skipped and why, and the deterministic by-group development split."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vesalius.eval.errors import ItemProblem
from vesalius.splits import is_dev

Kind = Literal["closed", "open", "choice", "label"]
KINDS: tuple[str, ...] = ("closed", "open", "choice", "label")
LANGUAGES: tuple[str, ...] = ("en", "zh")


@dataclass(frozen=True, slots=True)
class ArrayRef:
    """An image stored as one slice of an array inside a `.npz` file (MedMNIST): items refer to it instead of
    holding pixels, so loading a benchmark keeps memory bounded; `vesalius.eval.loaders.medmnist` reads or
    writes it as a PNG when needed."""

    file: Path
    key: str  # the array inside the npz, e.g. "val_images"
    index: int


@dataclass(frozen=True, slots=True, eq=True)
class EvalItem:
    """One benchmark question with its gold answer.

    `answer` is the gold answer as published (for "choice" items the gold option letter, its text being
    `options[answer]`; for "label" items the class name, its index being `label`). `answers` holds further accepted
    gold answers where a benchmark publishes them. `group` is what a by-image split keeps together: the image name,
    or the patient where file names carry one."""

    id: str
    benchmark: str
    question: str
    answer: str
    kind: Kind
    answers: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    image: Path | None = None
    array: ArrayRef | None = None
    group: str | None = None
    question_type: str | None = None
    organ_or_modality: str | None = None
    language: str = "en"
    context: str | None = None
    label: int | None = None
    classes: tuple[str, ...] = ()
    split: str | None = None  # the published split the item comes from, where one file holds several (MedMNIST)
    extra: dict[str, str] = field(default_factory=dict)  # further published fields, kept as text

    def __post_init__(self) -> None:
        # Raised as ItemProblem so a loader reports the item instead of crashing on it.
        if not self.id:
            raise ItemProblem("its id is empty")
        if self.kind not in KINDS:
            raise ItemProblem(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.language not in LANGUAGES:
            raise ItemProblem(f"language {self.language!r} is not one of {', '.join(LANGUAGES)}")
        if self.kind != "label" and not self.question.strip():
            raise ItemProblem("its question is empty")
        if not self.answer.strip():
            raise ItemProblem("its answer is empty")
        if self.kind == "choice":
            if len(self.options) < 2:
                raise ItemProblem("a multiple-choice item needs at least two options")
            if self.answer not in self.options:
                raise ItemProblem(f"its answer {self.answer!r} is not one of the options {', '.join(self.options)}")
        if self.kind == "label" and (self.label is None or not 0 <= self.label < len(self.classes)):
            raise ItemProblem(f"its label {self.label!r} is not a class index below {len(self.classes)}")

    def __hash__(self) -> int:  # options/extra are dicts: hash by identity within the benchmark instead
        return hash((self.benchmark, self.id))


@dataclass(frozen=True, slots=True)
class Skipped:
    """An item left out under skip_bad: where it is in the file (`ref`, e.g. "line 12 (qid 7)") and why."""

    ref: str
    reason: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded benchmark: its items in file order and the items skipped as bad (empty unless skip_bad)."""

    benchmark: str
    source: Path
    items: tuple[EvalItem, ...]
    skipped: tuple[Skipped, ...] = ()


def split_by_group(
    items: Iterable[EvalItem], dev_fraction: float = 0.2, seed: int = 0, *, by: Literal["group", "id"] = "group"
) -> tuple[tuple[EvalItem, ...], tuple[EvalItem, ...]]:
    """(train, dev): each group (an item's `group`, else its `id`) goes wholly to one side, decided by a hash of the
    group and the seed, so the same image never lands on both sides, and the split depends neither on item order
    nor on which other items are present. About `dev_fraction` of the groups (not of the items) go to dev.
    `by="id"` splits by question instead (`vesalius.splits`)."""
    if not 0.0 <= dev_fraction <= 1.0:
        raise ValueError(f"dev_fraction must be between 0 and 1, not {dev_fraction}")
    train: list[EvalItem] = []
    dev: list[EvalItem] = []
    for item in items:
        key = item.group if item.group is not None and by == "group" else item.id
        (dev if is_dev(key, dev_fraction, seed) else train).append(item)
    return tuple(train), tuple(dev)


def question_text(item: EvalItem, default: str = "") -> str:
    """The question as a person would type it: any context first, then the question, then the options."""
    parts = [f"Context: {item.context}"] if item.context else []
    parts.append(item.question or default)
    parts += [f"{letter}. {text}" for letter, text in item.options.items()]
    return "\n".join(parts)
