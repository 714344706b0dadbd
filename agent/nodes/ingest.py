from __future__ import annotations

from typing import Any

from vesalius.agent.deps import Deps
from vesalius.agent.follow_up import read_follow_up
from vesalius.agent.state import AgentState


def ingest(state: AgentState, deps: Deps) -> dict[str, Any]:
    """Load (or reuse) the thread's study and clear what the previous turn left in the state."""
    path = state.get("study_path")
    study = deps.study(path, state.get("modality"), state.get("series")) if path else None
    follow_up = read_follow_up(state["question"], state.get("history") or [])
    return {
        "study": study.summary.model_dump(mode="json") if study else {},
        "follow_up": follow_up.model_dump() if follow_up else None,
        "routed_question": follow_up.routed_as if follow_up else None,
        "comparison": None,
        "plan": {},
        "view": {},
        "study_kind": None,
        "tool_results": [],
        "citations": [],
        "model_reply": None,
        "model_prompt": None,
        "model_image_parts": 0,
        "warnings": [],
        "answer": {},
    }
