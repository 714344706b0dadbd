from __future__ import annotations

import re
from typing import Any

from langgraph.types import interrupt

from vesalius.agent.deps import Deps
from vesalius.agent.follow_up import SIDE, FollowUp
from vesalius.agent.planner import PlanningError, plan_with_model
from vesalius.agent.router import RoutePlan, plan_route
from vesalius.agent.state import AgentState
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.slices import choose_slices
from vesalius.vision.study import Study
from vesalius.vision.windows import Window, parse_window, preset


def route(state: AgentState, deps: Deps) -> dict[str, Any]:
    path = state.get("study_path")
    if not path:  # no image to measure: the question is answered from knowledge
        plan = plan_route(state["question"], {}).model_copy(update={"intent": "explain"})
        if state.get("audience"):
            plan = plan.model_copy(update={"audience": state["audience"]})
        return {"plan": plan.model_dump(), "view": {}}
    study = deps.study(path, state.get("modality"), state.get("series"))
    update: dict[str, Any] = {}
    if state.get("series") is None and study.series_choices and all(n is not None for n, _ in study.series_choices):
        update = which_series(path, study, state, deps)
        study = deps.study(path, state.get("modality"), update.get("series"))
    if _UNNAMED_SIDE.search(state["question"].lower()) and not SIDE.search(state["question"].lower()):
        update |= which_side(state)
        state = {**state, **update}  # type: ignore[typeddict-item]  # the rest of this step reads the reply
    plan = plan_route(state.get("routed_question") or state["question"], deps.registry.answers())
    if wants_model_plan(deps):
        plan, kind = planned_by_model(state.get("routed_question") or state["question"], study, plan, deps)
        if kind is not None:
            update["study_kind"] = kind.model_dump(mode="json")  # the tools reuse the gate's decision
    if (state.get("follow_up") or {}).get("kind") == "heatmap":
        plan = with_heatmaps(plan, deps)
    if state.get("audience"):
        plan = plan.model_copy(update={"audience": state["audience"]})
    return {
        **update,
        "plan": plan.model_dump(),
        "view": choose_view(study, plan, state.get("window"), deps.settings.vlm_max_images),
    }


_NUMBER = re.compile(r"\b(\d{1,6})\b")


def which_series(path: str, study: Study, state: AgentState, deps: Deps) -> dict[str, Any]:
    """The source holds several series and the thread has not chosen one: ask which (LangGraph's interrupt; the
    graph waits, stored, until the next message on the thread answers). The series chosen stays with the thread."""
    choices = study.series_choices
    shown = choices[0][0]
    reply = interrupt(
        {
            "question": "This study holds several series. Which one is the question about? Reply with its number.",
            "options": [d for _, d in choices],
        }
    )
    numbers = {n for n, _ in choices if n is not None}
    picked = next((int(m) for m in _NUMBER.findall(str(reply)) if int(m) in numbers), None)
    if picked is None:
        warning = f"the reply named none of the series; answered about series {shown}, the largest"
        return {"series": shown, "warnings": [*(state.get("warnings") or []), warning]}
    study = deps.study(path, state.get("modality"), picked)
    return {"series": picked, "study": study.summary.model_dump(mode="json")}


_UNNAMED_SIDE = re.compile(r"\b(?:that|this|the other|the same) side\b")  # "which side is it on?" asks us


def which_side(state: AgentState) -> dict[str, Any]:
    """ "Is it worse on that side?": which side is meant cannot be read from the question, so ask (the patient's
    side: films and axial slices show it on the image's other side). The reply makes this a question about it."""
    reply = interrupt(
        {"question": "Which side do you mean: the patient's left or right?", "options": ["left", "right"]}
    )
    side = SIDE.search(str(reply).lower())
    if side is None:
        warning = "the reply named neither side; the question was answered for the whole image"
        return {"warnings": [*(state.get("warnings") or []), warning]}
    history = state.get("history") or []
    asked = f"{state['question']} (the {side.group(0)} side)"
    follow_up = FollowUp(
        kind="side",
        refers_to=int(history[-1].get("turn") or len(history)) if history else 0,
        side="left" if side.group(0) == "left" else "right",
        routed_as=asked,
        earlier=state["question"],
    )
    return {"follow_up": follow_up.model_dump(), "routed_question": asked}


def wants_model_plan(deps: Deps) -> bool:
    """The "auto" planner plans with a served model: a local transformers model on CPU would take a second generation, of
    minutes, per question, and cannot be held to the schema."""
    s = deps.settings
    return s.planner == "model" or (s.planner == "auto" and s.vlm_backend == "server" and s.vlm_url is not None)


def with_heatmaps(plan: RoutePlan, deps: Deps) -> RoutePlan:
    """A follow-up asking for the heatmap runs every tool that draws one (each still checks it applies)."""
    drawing = {d.name for d in deps.registry.declarations() if "heatmap" in d.outputs}
    reasons = {**plan.reasons, **{n: "the question asks for the heatmap" for n in drawing - set(plan.tools)}}
    tools = [n for n in deps.registry.tools if n in reasons]
    return plan.model_copy(update={"tools": tools, "reasons": {n: reasons[n] for n in tools}})


def planned_by_model(question: str, study: Study, rules: RoutePlan, deps: Deps) -> tuple[RoutePlan, StudyKind | None]:
    """The model's plan, told what the gate made of the study; the rules' plan, saying why, when it cannot be had."""
    if deps.vlm is None:
        return rules.model_copy(update={"planner_note": "no model is configured (VESALIUS_VLM_URL)"}), None
    kind = deps.registry.kind(study)
    declared = [(d.name, d.description, d.applies_to, d.answers) for d in deps.registry.declarations()]
    described = f"{study.summary.one_line()}; the gate reads it as {kind.described()}"
    try:
        plan = plan_with_model(deps.vlm, question, deps.registry.answers(), described, declared, rules)
    except PlanningError as exc:
        return rules.model_copy(update={"planner_note": f"{exc}; the rules planned instead"}), kind
    return plan, kind


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


def after_route(state: AgentState) -> list[str]:
    return ["tools", "retrieve"] if state["plan"]["tools"] else ["retrieve"]
