"""The de-identification options and the record of what was done: types that travel with a study and its answer,
importable without pydicom (the profile itself is applied by `vesalius.vision.deid`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel


@dataclass(frozen=True)
class DeidOptions:
    key: bytes  # secret: UID replacement and date offsets are HMAC-SHA256 keyed by it, so they cannot be reversed
    dates: Literal["remove", "shift"] = "remove"
    retain_patient_characteristics: bool = True  # age (over 89 -> 090Y, HIPAA Safe Harbor), sex, size, weight ...

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) < 16:
            raise ValueError("the de-identification key must be at least 16 random bytes")
        if self.dates not in ("remove", "shift"):
            raise ValueError(f"dates must be 'remove' or 'shift', not {self.dates!r}")


class DeidRecord(BaseModel):
    """What de-identification did to one dataset (or a series, see `merge_records`): keywords and counts only."""

    profile: str
    options: list[str]
    removed: list[str]  # X: keywords, or "(gggg,eeee)" for attributes without one; private ones are only counted
    emptied: list[str]  # Z
    replaced: list[str]  # D: dummy values
    uids_replaced: int
    private_removed: int
    dates: Literal["removed", "shifted"]
    burned_in_annotation: Literal["NO", "YES", "unknown"]

    def warnings(self) -> list[str]:
        if self.burned_in_annotation == "YES":
            return [
                (
                    "The image declares burned-in annotation: its pixels may show identifying text (a name, an ID, "
                    "a date). De-identification cleans the header only; the pixels are not masked, so check the "
                    "image before sharing it."
                )
            ]
        if self.burned_in_annotation == "unknown":
            return [
                (
                    "The file does not say whether text is burned into the image; ultrasound, secondary captures "
                    "and scanned documents often carry a name, an ID or a date in the pixels. De-identification "
                    "cleans the header only; the pixels are not masked, so check the image before sharing it."
                )
            ]
        return []
