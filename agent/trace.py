"""What happened in each turn: how long each step took, what the route chose, what each tool did and what the model
was sent. Stored with the thread (`vesalius trace THREAD`), so a surprising answer can be taken apart later.

Nothing in a trace is new data about the patient: tool results and prompts are built from the de-identified study,
and the question, which a person typed and which may say anything, is kept once, in the history, not here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vesalius.agent.answer import Answer
from vesalius.agent.safety import fence

QUESTION_MARK = "[the question of this turn]"


class StepTime(BaseModel):
    node: str
    ms: float


class ToolTrace(BaseModel):
    tool: str
    applied: bool
    reason: str
    summary: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict, description="probabilities, anomaly, measurements")


class TurnTrace(BaseModel):
    turn: int
    total_ms: float
    steps: list[StepTime]
    route: dict[str, Any]
    tools: list[ToolTrace]
    citations: list[str] = Field(description="concept ids, in citation order")
    model: dict[str, Any]
    prompt: list[dict[str, Any]] | None = Field(
        None, description="the messages sent to the model, images as '<image>', the question as a marker"
    )


def turn_trace(answer: Answer, steps: list[tuple[str, float]], total_ms: float, prompt: Any) -> dict[str, Any]:
    tools = [
        ToolTrace(
            tool=t.tool,
            applied=t.applied,
            reason=t.reason,
            summary=t.summary,
            outputs={
                k: v
                for k, v in t.model_dump(mode="json", include={"probabilities", "anomaly", "measurements"}).items()
                if v
            },
        )
        for t in answer.tools
    ]
    trace = TurnTrace(
        turn=answer.turn,
        total_ms=round(total_ms, 1),
        steps=[StepTime(node=n, ms=round(ms, 1)) for n, ms in steps],
        route=answer.route.model_dump(mode="json"),
        tools=tools,
        citations=[c.concept_id for c in answer.citations],
        model=answer.model.model_dump(mode="json"),
        prompt=_without_question(prompt, answer.question) if prompt else None,
    )
    return trace.model_dump(mode="json")


def without_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each image part as '<image>': the pictures are the study's, and large."""
    return _without_question(messages, "")


def _without_question(messages: list[dict[str, Any]], question: str) -> list[dict[str, Any]]:
    def text(part: Any) -> Any:
        if isinstance(part, str):
            # The prompt carries the question fenced, and fencing takes out any fence the question held.
            return (
                part.replace(fence(question), fence(QUESTION_MARK)).replace(question, QUESTION_MARK)
                if question
                else part
            )
        if isinstance(part, dict) and part.get("type") == "image_url":
            return {"type": "image_url", "image_url": "<image>"}
        if isinstance(part, dict) and part.get("type") == "text":
            return {**part, "text": text(part.get("text", ""))}
        return part

    return [
        {**m, "content": [text(p) for p in m["content"]] if isinstance(m["content"], list) else text(m["content"])}
        for m in messages
    ]


def render(trace: TurnTrace) -> str:
    """A turn's trace as a few lines of text."""
    steps = ", ".join(f"{s.node} {s.ms:.0f} ms" for s in trace.steps)
    lines = [f"turn {trace.turn}: {trace.total_ms:.0f} ms ({steps})"]
    route = trace.route
    planner = route.get("planner") or "rules"
    why = f" ({route['planner_note']})" if route.get("planner_note") else ""
    lines.append(
        f"  route: {route.get('intent')} for a {route.get('audience')}, planned by the {planner}{why}; "
        f"tools {', '.join(route.get('tools', []))}"
    )
    for t in trace.tools:
        lines.append(f"  {t.tool}: {'ran' if t.applied else 'skipped'}: {t.summary or t.reason}")
    model = trace.model
    if model.get("used"):
        lines.append(
            f"  model {model.get('name')}: {model.get('prompt_tokens')} prompt tokens, "
            f"{model.get('completion_tokens')} generated, {model.get('image_parts')} image(s)"
        )
    else:
        lines.append("  model: not used")
    if trace.citations:
        lines.append(f"  cited: {', '.join(trace.citations)}")
    return "\n".join(lines)
