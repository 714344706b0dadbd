from __future__ import annotations

from typing import Any

from agent.deps import Deps
from agent.router import plan_route
from agent.state import AgentState


def route(state: AgentState, deps: Deps) -> dict[str, Any]:
    return {"plan": plan_route(state["question"], list(deps.tools)).model_dump()}


def after_route(state: AgentState) -> str:
    return "tools" if state["plan"]["tools"] else "retrieve"
