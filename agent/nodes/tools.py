from __future__ import annotations

from pathlib import Path
from typing import Any

from vesalius.agent.compare import Comparison, asks_to_compare, compare, findings
from vesalius.agent.deps import Deps
from vesalius.agent.follow_up import FollowUp
from vesalius.agent.state import AgentState
from vesalius.errors import VesaliusError
from vesalius.vision.models.gate import StudyKind

NOT_NEEDED = "not needed for this question"


def run_tools(state: AgentState, deps: Deps) -> dict[str, Any]:
    """Run the planned tools that apply to the study; report every other tool with the reason it did not run."""
    # Tools measure the chosen slice in the study's own display: a narrow preset window would clip by design and
    # read as a quality problem. The window is for what the model and the reader see.
    study = deps.view(state, windowed=False)
    assert study is not None  # the route plans tools only for a thread with a study
    out_dir = Path(state.get("heatmap_dir") or deps.settings.cache_dir / "heatmaps")
    known = StudyKind.model_validate(state["study_kind"]) if state.get("study_kind") else None
    kind, results = deps.registry.run(study, state["plan"]["tools"], out_dir, NOT_NEEDED, kind=known)
    if state["plan"]["intent"] != "explain":  # a question about this image, not about a term
        from vesalius.vision.tools.vqa_tool import answer_question

        follow_up = FollowUp.model_validate(state["follow_up"]) if state.get("follow_up") else None
        asked = (
            follow_up.earlier if follow_up and follow_up.about_evidence else follow_up.routed_as if follow_up else None
        )
        vector = deps.question_vector(asked or state["question"])
        results.append(answer_question(deps.registry.store, study, kind, vector))
    update = {"study_kind": kind.model_dump(mode="json"), "tool_results": [r.model_dump(mode="json") for r in results]}
    prior = state.get("prior")
    if prior and (state.get("compare_now") or asks_to_compare(state["question"])):
        comparison = compare_with_prior(prior, state, deps, findings(results), out_dir)
        update["comparison"] = comparison.model_dump()
    return update


def compare_with_prior(
    prior: dict[str, Any], state: AgentState, deps: Deps, current: dict[str, dict[str, Any]], out_dir: Path
) -> Comparison:
    """The same tools on the prior study; when its file is gone or holds other content now, what the thread
    stored when it was measured."""
    current_id = state["study"]["study_id"]
    note = None
    try:
        study = deps.study(prior["path"], prior.get("modality"), prior.get("series"))
    except (VesaliusError, OSError):  # its message would name the file, and file names can carry a patient's name
        study, note = None, "the prior study could not be read again"
    if study is not None and study.summary.study_id == prior["study_id"]:
        _, results = deps.registry.run(study, state["plan"]["tools"], out_dir, NOT_NEEDED)
        modalities = (study.summary.modality, state["study"].get("modality"))
        return Comparison(
            prior_study_id=prior["study_id"],
            current_study_id=current_id,
            prior_from="measured again",
            note=None
            if modalities[0] == modalities[1]
            else f"the prior is {modalities[0]} and this study {modalities[1]}: their measurements are not comparable",
            changes=compare(findings(results), current),
        )
    if study is not None:
        note = "the prior study's file holds other content now"
    stored = next(
        (t["findings"] for t in reversed(state.get("history") or []) if t.get("study_id") == prior["study_id"]),
        None,
    )
    if stored is None:
        note = f"{note}, and the thread stored no measurement of it"
    return Comparison(
        prior_study_id=prior["study_id"],
        current_study_id=current_id,
        prior_from="stored",
        note=note,
        changes=compare(stored or {}, current),
    )
