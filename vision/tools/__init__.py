"""Vision tools: each declares what it answers and applies to, and returns a typed `ToolResult`."""

from vision.tools.base import Region, ToolResult, VisionTool, not_applied
from vision.tools.registry import ToolDeclaration, ToolRegistry

__all__ = ["Region", "ToolDeclaration", "ToolRegistry", "ToolResult", "VisionTool", "not_applied"]
