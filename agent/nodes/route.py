from __future__ import annotations

from typing import Any

from vesalius.agent.deps import Deps
from vesalius.agent.router import RoutePlan, plan_route
from vesalius.agent.state import AgentState
from vesalius.vision.slices import choose_slices
from vesalius.vision.study import Study
from vesalius.vision.windows import Window, parse_window, preset


def route(state: AgentState, deps: Deps) -> dict[str, Any]:
    plan = plan_route(state["question"], deps.registry.answers())
    if state.get("audience"):
        plan = plan.model_copy(update={"audience": state["audience"]})
    study = deps.study(state["study_path"], state.get("modality"), state.get("series"))
    return {
        "plan": plan.model_dump(),
        "view": choose_view(study, plan, state.get("window"), deps.settings.vlm_max_images),
    }


def choose_view(study: Study, plan: RoutePlan, user_window: str | None, max_images: int) -> dict[str, Any]:
    """Which images to show and through which window: the user's choice first, then the question's."""
    window, why = _window(study, plan, user_window)
    choice = choose_slices(study, count=max_images, focus=plan.focus, requested=plan.images or None)
    return {
        "indices": choice.indices,
        "key": choice.key,
        "images_reason": choice.reason,
        "window": window.model_dump() if window else None,
        "window_reason": why,
    }


def _window(study: Study, plan: RoutePlan, user_window: str | None) -> tuple[Window | None, str]:
    if study.summary.colour:
        return None, "colour image: shown as stored"
    if user_window:
        chosen = parse_window(user_window)
        return chosen, "chosen by the user" if chosen else "fitted to the image, as the user asked"
    if plan.window and study.summary.physical_unit == "HU":
        name = plan.window
        if name in _HEAD_WINDOWS and (study.summary.body_part or "HEAD") not in _HEAD_PARTS:
            name = "abdomen"  # a bleed in the chest or abdomen is judged in a soft-tissue window
        return preset(name), f"{name} window: {plan.view_reason}"
    current = study.summary.window
    return None, f"the study's own window ({current.source})" if current else "shown as stored"


_HEAD_WINDOWS = ("brain", "subdural")
_HEAD_PARTS = ("HEAD", "BRAIN", "SKULL", "HEADNECK")


def after_route(state: AgentState) -> str:
    return "tools" if state["plan"]["tools"] else "retrieve"
