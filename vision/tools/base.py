"""What every vision tool is and returns. The agent lists and calls tools only through this seam."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from vision.study import Study


class Region(BaseModel):
    """A rectangle in the rendered image (pixels, origin top-left) and how unusual it is."""

    x: int
    y: int
    width: int
    height: int
    score: float = Field(description="how unusual, in robust standard deviations; not a probability")
    side: str | None = Field(None, description="which side is brighter, as displayed (image left/right)")


class ToolResult(BaseModel):
    tool: str
    applied: bool
    reason: str = Field(description="why the tool ran on this study, or why it did not")
    summary: str = ""
    measurements: dict[str, float] = Field(default_factory=dict)
    regions: list[Region] = Field(default_factory=list)
    heatmap_path: str | None = None
    caveats: list[str] = Field(default_factory=list)


class VisionTool(Protocol):
    name: str
    description: str

    def applicability(self, study: Study) -> str | None:
        """None when the tool applies to `study`, else the reason it does not."""

    def run(self, study: Study, out_dir: Path | None) -> ToolResult:
        """Measure `study`; write pictures (heatmaps) under `out_dir` when given."""


def not_applied(tool: VisionTool, reason: str) -> ToolResult:
    return ToolResult(tool=tool.name, applied=False, reason=reason)
