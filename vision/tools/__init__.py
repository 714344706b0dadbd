"""Vision tools: each says whether it applies to a study and returns a typed `ToolResult`."""

from vision.tools.asymmetry_map import AsymmetryMap
from vision.tools.base import Region, ToolResult, VisionTool, not_applied
from vision.tools.ct_attenuation import CtAttenuation
from vision.tools.image_quality import ImageQuality


def default_tools() -> dict[str, VisionTool]:
    tools: list[VisionTool] = [ImageQuality(), CtAttenuation(), AsymmetryMap()]
    return {t.name: t for t in tools}


__all__ = ["Region", "ToolResult", "VisionTool", "default_tools", "not_applied"]
