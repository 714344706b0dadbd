from __future__ import annotations

from pathlib import Path
from typing import Any

from vesalius.agent.deps import Deps
from vesalius.agent.state import AgentState

NOT_NEEDED = "not needed for this question"


def run_tools(state: AgentState, deps: Deps) -> dict[str, Any]:
    """Run the planned tools that apply to the study; report every other tool with the reason it did not run."""
    # Tools measure the chosen slice in the study's own display: a narrow preset window would clip by design and
    # read as a quality problem. The window is for what the model and the reader see.
    study = deps.view(state, windowed=False)
    out_dir = Path(state.get("heatmap_dir") or deps.settings.cache_dir / "heatmaps")
    kind, results = deps.registry.run(study, state["plan"]["tools"], out_dir, NOT_NEEDED)
    if state["plan"]["intent"] != "explain":  # a question about this image, not about a term
        from vesalius.vision.tools.vqa_tool import answer_question

        vector = deps.question_vector(state["question"])
        results.append(answer_question(deps.registry.store, study, kind, vector))
    return {"study_kind": kind.model_dump(mode="json"), "tool_results": [r.model_dump(mode="json") for r in results]}
