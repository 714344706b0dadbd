"""Vision tools: each declares what it answers and applies to, and returns a typed `ToolResult`."""

from typing import TYPE_CHECKING

from vesalius._lazy import lazy_attributes

_WHERE = {
    "Region": "vesalius.vision.tools.base",
    "ToolResult": "vesalius.vision.tools.base",
    "VisionTool": "vesalius.vision.tools.base",
    "not_applied": "vesalius.vision.tools.base",
    "ToolDeclaration": "vesalius.vision.tools.registry",
    "ToolRegistry": "vesalius.vision.tools.registry",
}
__all__ = ["Region", "ToolDeclaration", "ToolRegistry", "ToolResult", "VisionTool", "not_applied"]
__getattr__, __dir__ = lazy_attributes(__name__, globals(), _WHERE)

if TYPE_CHECKING:
    from vesalius.vision.tools.base import Region, ToolResult, VisionTool, not_applied
    from vesalius.vision.tools.registry import ToolDeclaration, ToolRegistry
