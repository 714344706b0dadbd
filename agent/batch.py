"""Many images in one process (`vesalius classify`, `vesalius anomaly`): one record per image, models loaded once.

A file that cannot be read gets a record with its error and the run goes on: one bad file in a folder of
hundreds should not cost the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from vesalius.agent.deps import Deps
from vesalius.agent.errors import AgentError
from vesalius.agent.service import user_path
from vesalius.vision.coded import user_modality
from vesalius.vision.errors import StudyError
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import Probability
from vesalius.vision.tools.base import AnomalyScore, Region


class AnomalyRecord(AnomalyScore):
    regions: list[Region]
    heatmap_path: str | None = None


class ImageRecord(BaseModel):
    path: str
    study_id: str | None = None
    kind: StudyKind | None = Field(None, description="the gate's decision")
    probabilities: dict[str, list[Probability]] = Field(default_factory=dict, description="per tool, calibrated")
    anomaly: dict[str, AnomalyRecord] = Field(default_factory=dict, description="per tool")
    applied: list[str] = Field(default_factory=list)
    not_applied: dict[str, str] = Field(default_factory=dict, description="tool -> why it did not run")
    error: str | None = None


def model_tools(deps: Deps, outputs: set[str]) -> list[str]:
    return [name for name, t in deps.registry.tools.items() if outputs & set(t.outputs)]


def run_batch(
    deps: Deps, paths: Iterable[Path], outputs: set[str], heatmaps: Path | None, modality: str | None = None
) -> Iterator[ImageRecord]:
    wanted = model_tools(deps, outputs)
    modality = user_modality(modality) if modality else None  # refused once, not once per file
    for path in paths:
        try:
            user_path(path, "path")
            study = deps.study(path, modality)
            kind, results = deps.registry.run(study, wanted, heatmaps)
        except (StudyError, AgentError) as exc:
            shown_path = str(path).encode("utf-8", "replace").decode("utf-8")  # JSON cannot carry undecodable bytes
            yield ImageRecord(path=shown_path, error=f"{exc.problem}. {exc.remedy}")
            continue
        finally:
            deps.forget(path, modality)  # a long batch must not keep every study in memory
        record = ImageRecord(path=str(path), study_id=study.summary.study_id, kind=kind)
        for r in results:
            if r.tool not in wanted:
                continue
            if not r.applied:
                record.not_applied[r.tool] = r.reason
                continue
            record.applied.append(r.tool)
            if r.probabilities:
                record.probabilities[r.tool] = r.probabilities
            if r.anomaly:
                record.anomaly[r.tool] = AnomalyRecord(
                    **r.anomaly.model_dump(), regions=r.regions, heatmap_path=r.heatmap_path
                )
        yield record
