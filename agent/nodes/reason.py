from __future__ import annotations

from typing import Any

from langgraph.config import get_config, get_stream_writer

from vesalius.agent.deps import Deps
from vesalius.agent.errors import ModelServerError
from vesalius.agent.prompt import build_messages, describe_view
from vesalius.agent.state import AgentState
from vesalius.agent.trace import without_images


def reason(state: AgentState, deps: Deps) -> dict[str, Any]:
    """Ask the multimodal model. A failing server becomes a warning unless the user required the model."""
    assert deps.vlm is not None  # the graph only routes here when a model server is configured
    study = deps.view(state)
    view = state.get("view") or {}
    images = (
        [study.render(i, deps.settings.vlm_image_max_side) for i in view.get("indices") or [study.index]]
        if study
        else []
    )
    messages = build_messages(
        state["question"],
        study,
        images,
        describe_view(study, view) if study else "no image: a question about medicine",
        state.get("tool_results") or [],
        state.get("citations") or [],
        state.get("history") or [],
        state["plan"]["audience"],
        (state.get("context") or {}).get("text"),
    )
    images = sum(
        1 for m in messages if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"
    )
    on_token = None
    if (get_config().get("configurable") or {}).get("stream_tokens"):
        write = get_stream_writer()

        def on_token(text: str) -> None:
            write({"token": text})

    try:
        reply = deps.vlm.chat(messages, max_tokens=deps.settings.vlm_max_tokens, on_token=on_token)
    except ModelServerError as exc:
        if deps.settings.require_model:
            raise
        warning = f"{exc.problem}; answered from the tools and the knowledge base instead"
        return {"model_reply": None, "warnings": [*(state.get("warnings") or []), warning]}
    prompt = without_images(messages)
    return {"model_reply": reply.model_dump(), "model_image_parts": images, "model_prompt": prompt}
