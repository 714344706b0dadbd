"""The graph's state: a typed dict of JSON-friendly values, so that a SQLite checkpoint can hold it."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class AgentState(TypedDict, total=False):
    thread_id: str
    question: str
    study_path: str
    modality: str | None  # user-supplied modality for plain images
    series: int | None  # SeriesNumber chosen in a folder, zip or DICOMDIR of several series
    window: str | None  # the user's window: a preset name, "auto" or "center,width"
    heatmap_dir: str | None
    # Per turn (reset by ingest):
    study: dict[str, Any]
    plan: dict[str, Any]
    view: dict[str, Any]  # the images shown and the window, chosen by route
    study_kind: dict[str, Any] | None  # the gate's decision: which trained models may run
    tool_results: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    model_reply: dict[str, Any] | None
    model_image_parts: int
    warnings: list[str]
    answer: dict[str, Any]
    # Across turns: each compose appends the finished turn.
    history: Annotated[list[dict[str, Any]], operator.add]
