"""Benchmark drivers and scoring. They drive the agent or the model from outside; nothing imports eval."""
