"""Scoring schemes for medical VQA and QA: Vesalius' own (the default) and faithful reproductions of MedEvalKit
and MultiMedEval, so a number can be quoted under the scheme a paper used. Pure Python + numpy; see
docs/evaluation-scoring.md for the exact rules and the harnesses' defects."""

from __future__ import annotations

from collections.abc import Callable

from vesalius.eval.scoring import medevalkit, multimedeval, vesalius
from vesalius.eval.scoring.summary import summarise
from vesalius.eval.scoring.types import KINDS, ItemScore, Kind, Options

Scorer = Callable[..., ItemScore]

# The names the coming `vesalius eval run --scoring NAME` accepts.
SCHEMES: dict[str, Scorer] = {
    "vesalius": vesalius.score,
    "medevalkit": medevalkit.score,
    "multimedeval": multimedeval.score,
}


def get_scorer(name: str) -> Scorer:
    """The `score(kind, prediction, gold, options=None, **scheme_options)` function of scheme `name`."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scoring scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


__all__ = ["KINDS", "SCHEMES", "ItemScore", "Kind", "Options", "Scorer", "get_scorer", "summarise"]
