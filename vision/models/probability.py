"""A calibrated probability and how to show it: the type every result carries, without the model behind it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Probability(BaseModel):
    label: str
    probability: float = Field(description="calibrated on validation; a likelihood, not a verdict")
    threshold: float | None = Field(None, description="the operating point of the model card")
    above_threshold: bool | None = None


def shown(p: float) -> str:
    """A probability as people should read it: never a rounded 1.00 or 0.00, which would read as certainty."""
    return "> 0.99" if p > 0.99 else "< 0.01" if p < 0.01 else f"{p:.2f}"
