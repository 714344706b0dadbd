"""What every vision tool is, declares and returns. The agent lists and calls tools only through this seam
(vesalius.vision.tools.registry), so a new tool plugs in without changes to the agent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, Field

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import Probability

if TYPE_CHECKING:  # the result types import without pixels, pydicom or torch
    from vesalius.vision.study import Study

# What a question can ask of the image; each tool declares which of these it answers (the router matches them).
Intent = Literal["abnormality", "measurement", "quality"]
# The parts of a ToolResult a tool fills when it runs: its output schema.
Output = Literal["summary", "measurements", "regions", "heatmap", "probabilities", "anomaly"]


class Region(BaseModel):
    """A rectangle in the rendered image (pixels, origin top-left) and how unusual it is."""

    x: int
    y: int
    width: int
    height: int
    score: float = Field(description="how unusual, in `unit`; not a probability")
    unit: str = "robust SD"
    side: str | None = Field(None, description="where it lies or which side differs, as displayed")


class AnomalyScore(BaseModel):
    score: float
    threshold: float = Field(description="set from validation normal images")
    normal_percentile: float = Field(description="share of validation normal images scoring lower, in %")
    unusual: bool


class ModelInfo(BaseModel):
    name: str
    version: str
    validation: str = Field(description="headline validation metrics from the model card")
    card: str = Field(description="where the model card is")


class ToolResult(BaseModel):
    tool: str
    applied: bool
    reason: str = Field(description="why the tool ran on this study, or why it did not")
    summary: str = ""
    measurements: dict[str, float] = Field(default_factory=dict)
    probabilities: list[Probability] = Field(default_factory=list, description="calibrated, per class")
    anomaly: AnomalyScore | None = None
    regions: list[Region] = Field(default_factory=list)
    heatmap_path: str | None = None
    model: ModelInfo | None = Field(None, description="the trained model behind the result, if any")
    caveats: list[str] = Field(default_factory=list)


class VisionTool(Protocol):
    name: str
    description: str
    applies_to: str  # in words, for people and for `vesalius tools`
    answers: frozenset[str]  # Intent values
    outputs: frozenset[str]  # Output values filled when it runs

    def applicability(self, study: Study, kind: StudyKind) -> str | None:
        """None when the tool applies to `study` (of the gate's `kind`), else the reason it does not."""

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        """Measure `study`; write pictures (heatmaps) under `out_dir` when given."""


def not_applied(tool: VisionTool, reason: str) -> ToolResult:
    return ToolResult(tool=tool.name, applied=False, reason=reason)
