"""A calibrated probability and how to show it: the type every result carries, without the model behind it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Probability(BaseModel):
    label: str
    probability: float = Field(description="calibrated on validation; a likelihood, not a verdict")
    threshold: float | None = Field(None, description="the operating point of the model card")
    above_threshold: bool | None = None
    in_training_range: bool | None = Field(
        None,
        description="whether the image is like the model's training images (its features within the distance "
        "that 99% of validation images stay within); false: the probability has no calibrated meaning here and "
        "raises no alarm; null: the model has no such check",
    )

    @property
    def flagged(self) -> bool:
        """Above the screening threshold on an image like the training images: what may raise an alarm."""
        return bool(self.above_threshold) and self.in_training_range is not False


def shown(p: float) -> str:
    """A probability as people should read it: never a rounded 1.00 or 0.00, which would read as certainty."""
    return "> 0.99" if p > 0.99 else "< 0.01" if p < 0.01 else f"{p:.2f}"
