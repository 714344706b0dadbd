"""The typed result every scheme returns for one question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

# closed: yes/no and other closed-set answers; open: free text; mc: multiple choice with lettered options;
# label: a classification label compared as a whole.
Kind = Literal["closed", "open", "mc", "label"]
KINDS: tuple[str, ...] = ("closed", "open", "mc", "label")

# Multiple-choice options: {"A": "text", ...} or a sequence lettered A, B, C... in order.
Options = Mapping[str, str] | Sequence[str]


@dataclass(frozen=True)
class ItemScore:
    """One question's outcome under one scheme.

    `kind` is the kind the scheme actually scored it as: the harness reproductions route by the gold answer
    (e.g. MedEvalKit on VQA-RAD scores every non-yes/no gold as open), so it can differ from the kind asked for.
    `correct` is what counts towards accuracy; `metrics` holds the per-item numbers that are averaged
    (for open questions: exact_match, token_f1, token_recall, bleu1 at least). `parsed` is the answer the
    scheme read out of the prediction (a letter, yes/no, normalised text), for traces.
    """

    kind: str
    correct: bool
    metrics: dict[str, float] = field(default_factory=dict)
    parsed: str | None = None


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {KINDS}")


def option_map(options: Options | None) -> dict[str, str]:
    """Options as {"A": text, ...} with upper-case letters."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items()}
    return {chr(ord("A") + i): str(v) for i, v in enumerate(options)}
