"""Benchmark drivers and scoring. They drive the agent or the model from outside; nothing imports eval."""

from vesalius._lazy import installed_name

installed_name(__name__)
