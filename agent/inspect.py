"""What ingestion made of a study, and the images a model would be shown (`Vesalius.inspect`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from vesalius.agent.errors import AgentError
from vesalius.vision import Study
from vesalius.vision.deid_record import DeidRecord
from vesalius.vision.slices import choose_slices
from vesalius.vision.study import StudySummary
from vesalius.vision.windows import PRESETS


def write_images(study: Study, out: Path, count: int) -> list[str]:
    """PNG renderings of `count` evenly spaced images (all with 0), named by their 1-based number."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgentError(f"cannot create {out} ({exc.strerror})", "Choose a writable folder for --out") from exc
    total = len(study.volume)
    indices = range(total) if count <= 0 else choose_slices(study, count=count).indices
    kind = {"volume": "slice", "cine": "frame"}.get(study.summary.stack, "image")
    written = []
    for i in indices:
        path = out / f"{study.summary.study_id}_{kind}{i + 1:04d}.png"
        study.render(i).save(path)
        written.append(str(path))
    return written


class Inspection(BaseModel):
    """What ingestion made of a study (`Vesalius.inspect`, `vesalius inspect`)."""

    summary: StudySummary
    deidentification: DeidRecord | None
    images: list[str] = Field(description="where each image came from: file, and frame when there are several")
    warnings: list[str]
    window_presets: dict[str, dict[str, float]] = Field(description="name -> {center, width}, for --window")
    written: list[str] = Field(description="PNG files written (with an output folder)")


def inspection(study: Study, written: list[str]) -> Inspection:
    return Inspection(
        summary=study.summary,
        deidentification=study.deid,
        images=[s.label() for s in study.sources],
        warnings=list(study.warnings),
        window_presets={name: {"center": c, "width": w} for name, (c, w) in PRESETS.items()},
        written=written,
    )
