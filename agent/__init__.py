"""The Vesalius agent: a LangGraph graph over vision tools, knowledge retrieval and a multimodal model."""

from vesalius._lazy import installed_name

installed_name(__name__)
