"""The Vesalius agent: a LangGraph graph over vision tools, knowledge retrieval and a multimodal model."""
