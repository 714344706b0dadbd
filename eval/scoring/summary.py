"""Aggregate ItemScores into the report block: overall, closed, open, and the same per group, with 95% bootstrap
intervals (`stats.bootstrap_ci`, B=1000, fixed seed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vesalius.eval.scoring.stats import DEFAULT_B, DEFAULT_SEED, bootstrap_ci
from vesalius.eval.scoring.types import ItemScore

# mc and label questions are closed-set answers: they count in "closed" (and "by kind" keeps them apart).
CLOSED_KINDS = frozenset({"closed", "mc", "label"})
OPEN_METRICS = ("exact_match", "token_f1", "token_recall", "bleu1")


def _mean(values: list[float], b: int, seed: int) -> tuple[float | None, list[float] | None]:
    if not values:
        return None, None
    iv = bootstrap_ci(values, b=b, seed=seed)
    return iv.estimate, [iv.low, iv.high]


def _block(scores: Sequence[ItemScore], b: int, seed: int) -> dict[str, Any]:
    closed = [s for s in scores if s.kind in CLOSED_KINDS]
    opened = [s for s in scores if s.kind == "open"]
    acc, acc_ci = _mean([float(s.correct) for s in scores], b, seed)
    c_acc, c_ci = _mean([float(s.correct) for s in closed], b, seed)
    out: dict[str, Any] = {
        "n": len(scores),
        "overall": {"accuracy": acc, "accuracy_ci": acc_ci},
        "closed": {"n": len(closed), "accuracy": c_acc, "accuracy_ci": c_ci},
    }
    o: dict[str, Any] = {"n": len(opened)}
    # "accuracy" is what the scheme counts as correct (Vesalius/MedEvalKit: exact match; MultiMedEval: recall>=.75).
    o["accuracy"], o["accuracy_ci"] = _mean([float(s.correct) for s in opened], b, seed)
    for key in OPEN_METRICS:
        o[key], o[f"{key}_ci"] = _mean([float(s.metrics.get(key, 0.0)) for s in opened], b, seed)
    errors = sum(int(s.metrics.get("harness_error", 0.0)) for s in opened)
    if errors:
        o["harness_errors"] = errors
    out["open"] = o
    return out


def summarise(
    scores: Sequence[ItemScore],
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    b: int = DEFAULT_B,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """`{"n", "overall": {"accuracy"}, "closed": {"n", "accuracy"}, "open": {"n", "exact_match", "token_f1",
    "token_recall", "bleu1"}, "by": {...}}`; each number has a `<name>_ci` [low, high] beside it (None when the
    block is empty).

    Overall accuracy is the mean over all questions of `correct` (closed: accuracy; open: the scheme's open
    correctness). `groups` maps a grouping name ("organ", "question_type") to one label per score, aligned with
    `scores`; "by" always holds "kind" (closed / open / mc / label as scored) plus each grouping.
    """
    scores = list(scores)
    result = _block(scores, b, seed)
    by: dict[str, dict[str, Any]] = {}
    all_groups: dict[str, Sequence[str]] = {"kind": [s.kind for s in scores]}
    for name, labels in (groups or {}).items():
        if len(labels) != len(scores):
            raise ValueError(f"group {name!r} has {len(labels)} labels for {len(scores)} scores")
        all_groups[name] = labels
    for name, labels in all_groups.items():
        members: dict[str, list[ItemScore]] = {}
        for label, s in zip(labels, scores, strict=True):
            members.setdefault(str(label), []).append(s)
        by[name] = {label: _block(items, b, seed) for label, items in sorted(members.items())}
    result["by"] = by
    return result
