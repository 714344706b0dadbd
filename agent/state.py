"""The graph's state: a typed dict of JSON-friendly values, so that a SQLite checkpoint can hold it."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class AgentState(TypedDict, total=False):
    thread_id: str
    question: str
    study_path: str | None  # None: a conversation about medicine, with no study (yet)
    modality: str | None  # user-supplied modality for plain images
    series: int | None  # SeriesNumber chosen in a folder, zip or DICOMDIR of several series
    window: str | None  # the user's window: a preset name, "auto" or "center,width"
    audience: str | None  # "clinician" or "patient" when the thread was opened for one; else read from each question
    heatmap_dir: str | None
    # The thread's earlier study, when a second one was opened in it: {path, modality, series, study_id}.
    prior: dict[str, Any] | None
    context: dict[str, Any] | None  # agent/context.py: the clinical context, de-identified; kept by the thread
    compare_now: bool  # set by each turn: a study was just opened against a prior, so compare whatever was asked
    # Per turn (reset by ingest):
    study: dict[str, Any]
    plan: dict[str, Any]
    follow_up: dict[str, Any] | None  # agent/follow_up.py: how this question leans on the previous turn
    routed_question: str | None  # the question as routed (a follow-up joined to the question it follows)
    comparison: dict[str, Any] | None  # agent/compare.py: prior against current, per tool
    view: dict[str, Any]  # the images shown and the window, chosen by route
    study_kind: dict[str, Any] | None  # the gate's decision: which trained models may run
    tool_results: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    model_reply: dict[str, Any] | None
    model_prompt: list[dict[str, Any]] | None  # what the model was sent, images left out (for the trace)
    model_image_parts: int
    warnings: list[str]
    answer: dict[str, Any]
    # Across turns: each compose appends the finished turn, and `Vesalius.ask` its trace (agent/trace.py).
    history: Annotated[list[dict[str, Any]], operator.add]
    traces: Annotated[list[dict[str, Any]], operator.add]
    # The layout of this state, so that a thread written by an earlier Vesalius is read through `upgrade`.
    state_version: int


# 1: Vesalius 0.1 (no state_version key). 2: each history entry carries its turn number.
STATE_VERSION = 2


def _v1_to_v2(values: dict[str, Any]) -> dict[str, Any]:
    history = [{"turn": i, **turn} for i, turn in enumerate(values.get("history") or [], start=1)]
    return {**values, "history": history, "state_version": 2}


_UPGRADES = {1: _v1_to_v2}  # version -> the step that makes it version + 1


class NewerStateError(ValueError):
    def __init__(self, version: int):
        super().__init__(f"state version {version} is newer than this Vesalius reads ({STATE_VERSION})")
        self.version = version


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A stored thread's values in the current layout. Every read goes through it, and the next turn on the
    thread stores the upgraded values (`Vesalius.ask`), so reading alone never writes."""
    if not values:
        return values
    version = int(values.get("state_version") or 1)
    if version > STATE_VERSION:
        raise NewerStateError(version)
    while version < STATE_VERSION:
        values = _UPGRADES[version](values)
        version += 1
    return values
