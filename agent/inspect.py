"""`vesalius inspect`: what ingestion made of a study, and the images a model would be shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vesalius.agent.errors import AgentError
from vesalius.agent.render import deid_line
from vesalius.vision import Study
from vesalius.vision.deid import DeidRecord
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


def inspection(study: Study, written: list[str]) -> dict[str, Any]:
    return {
        "summary": study.summary.model_dump(mode="json"),
        "deidentification": study.deid.model_dump(mode="json") if study.deid else None,
        "images": [s.label() for s in study.sources],
        "warnings": list(study.warnings),
        "window_presets": {name: {"center": c, "width": w} for name, (c, w) in PRESETS.items()},
        "written": written,
    }


def render_inspection(report: dict[str, Any]) -> str:
    summary = StudySummary.model_validate(report["summary"])
    out = [f"Study     {summary.one_line()}", f"Source    {summary.source_kind} · {summary.transfer_syntax or '-'}"]
    if summary.stored_windows:
        out.append(f"Windows   stored in the file: {'; '.join(w.label() for w in summary.stored_windows)}")
    out.append(f"Presets   {', '.join(report['window_presets'])} (choose with --window)")
    if report["deidentification"]:
        record = DeidRecord.model_validate(report["deidentification"])
        out.append(f"De-id     {deid_line(record)}")
        if record.removed or record.emptied or record.replaced:
            out.append(
                f"          attributes: {', '.join(sorted({*record.removed, *record.emptied, *record.replaced}))}"
            )
    images = report["images"]
    shown = images if len(images) <= 6 else [*images[:3], f"... {len(images) - 6} more ...", *images[-3:]]
    out.append(f"Images    {len(images)}: {', '.join(shown)}")
    out += [f"Warning   {w}" for w in report["warnings"]]
    out += [f"Wrote     {p}" for p in report["written"]]
    return "\n".join(out)
