"""Vision tools: each declares what it answers and applies to, and returns a typed `ToolResult`."""

from vesalius.vision.tools.base import Region, ToolResult, VisionTool, not_applied
from vesalius.vision.tools.registry import ToolDeclaration, ToolRegistry

__all__ = ["Region", "ToolDeclaration", "ToolRegistry", "ToolResult", "VisionTool", "not_applied"]
