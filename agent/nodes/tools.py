from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.deps import Deps
from agent.state import AgentState
from vision.tools import not_applied

NOT_NEEDED = "not needed for this question"


def run_tools(state: AgentState, deps: Deps) -> dict[str, Any]:
    """Run the planned tools that apply to the study; report every other tool with the reason it did not run."""
    # Tools measure the chosen slice in the study's own display: a narrow preset window would clip by design and
    # read as a quality problem. The window is for what the model and the reader see.
    study = deps.view(state, windowed=False)
    planned = state["plan"]["tools"]
    out_dir = Path(state.get("heatmap_dir") or deps.settings.cache_dir / "heatmaps")
    results = []
    for name, tool in deps.tools.items():
        if name not in planned:
            results.append(not_applied(tool, NOT_NEEDED))
        elif (why_not := tool.applicability(study)) is not None:
            results.append(not_applied(tool, why_not))
        else:
            results.append(tool.run(study, out_dir))
    return {"tool_results": [r.model_dump(mode="json") for r in results]}
