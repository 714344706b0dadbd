"""Prior against current: what each tool measured on the earlier study of a thread and on this one, and what
changed. A thread keeps each turn's findings (compact, no pixels), so a comparison survives a restart even when the
prior study's file has gone."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from vesalius.vision.models.probability import shown
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

_ASKS = re.compile(
    r"\b(?:compar|chang|differ|prior|previous|earlier|older|last (?:scan|study|film|time|one)|since|progress|"
    r"worse|better|improv|grow|grew|shrunk|shrink|new (?:finding|lesion|spot)|interval|before)"
)
_MEASUREMENTS = 4  # per tool: the comparison reads as a summary, the full numbers stay with each answer


def asks_to_compare(question: str) -> bool:
    return bool(_ASKS.search(question.lower()))


def findings(tools: list[ToolResult]) -> dict[str, dict[str, Any]]:
    """What each tool that ran measured, in a form a thread can keep."""
    out: dict[str, dict[str, Any]] = {}
    for t in tools:
        if not t.applied or t.tool == VQA_TOOL:
            continue
        out[t.tool] = {
            "probabilities": {p.label: round(p.probability, 4) for p in t.probabilities},
            "anomaly": None if t.anomaly is None else round(t.anomaly.score, 4),
            "unusual": None if t.anomaly is None else t.anomaly.unusual,
            "regions": len(t.regions),
            "measurements": {k: round(v, 4) for k, v in list(t.measurements.items())[:_MEASUREMENTS]},
        }
    return out


class ToolChange(BaseModel):
    tool: str
    prior: str
    current: str
    change: str = Field(description="what changed, in words; 'no change beyond rounding' when nothing did")


class Comparison(BaseModel):
    prior_study_id: str
    current_study_id: str
    prior_from: Literal["measured again", "stored"] = Field(
        description="whether the prior study was measured again in this turn, or its findings read from the thread"
    )
    note: str | None = Field(None, description="why the comparison is limited, when it is")
    changes: list[ToolChange]


def compare(prior: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[ToolChange]:
    changes = []
    for tool in sorted(prior.keys() | current.keys()):
        before, after = prior.get(tool), current.get(tool)
        if before is None or after is None:
            changes.append(
                ToolChange(
                    tool=tool,
                    prior=_brief(before) if before else "not run",
                    current=_brief(after) if after else "not run",
                    change="ran on only one of the studies: nothing to compare",
                )
            )
            continue
        changes.append(ToolChange(tool=tool, prior=_brief(before), current=_brief(after), change=_delta(before, after)))
    return changes


def _brief(f: dict[str, Any]) -> str:
    parts = [f"P({label}) {shown(p)}" for label, p in f["probabilities"].items()]
    if f["anomaly"] is not None:
        parts.append(f"anomaly score {f['anomaly']:.2f}{' (unusual)' if f['unusual'] else ''}")
    if f["regions"]:
        parts.append(f"{f['regions']} region(s)")
    if not parts:
        parts = [f"{k} {v:g}" for k, v in f["measurements"].items()]
    return ", ".join(parts) or "ran, nothing to report"


def _delta(before: dict[str, Any], after: dict[str, Any]) -> str:
    said = []
    for label, p in after["probabilities"].items():
        if label in before["probabilities"]:
            d = p - before["probabilities"][label]
            if abs(d) >= 0.05:  # calibration error on held-out data is of this order: smaller moves are noise
                said.append(f"probability of {label} {'up' if d > 0 else 'down'} {abs(d):.2f}")
    if after["anomaly"] is not None and before["anomaly"] is not None:
        d = after["anomaly"] - before["anomaly"]
        if before["unusual"] != after["unusual"]:
            said.append(f"now {'unusual' if after['unusual'] else 'in the normal range'} (score {d:+.2f})")
        elif abs(d) >= 0.1 * max(1.0, abs(before["anomaly"])):
            said.append(f"anomaly score {d:+.2f}")
    if after["regions"] != before["regions"]:
        said.append(f"regions {before['regions']} -> {after['regions']}")
    for key, v in after["measurements"].items():
        old = before["measurements"].get(key)
        if old is not None and abs(v - old) > 0.1 * max(abs(old), 1e-6) and len(said) < 4:
            said.append(f"{key} {old:g} -> {v:g}")
    return "; ".join(said) or "no change beyond rounding"


def comparison_lead(c: Comparison, patient: bool) -> str:
    if c.note and "not comparable" in c.note:
        if patient:
            return "Your two scans are different kinds of pictures, so the program cannot compare them."
        return f"The studies cannot be compared tool by tool: {c.note}."
    changed = [
        ch for ch in c.changes if ch.change not in ("no change beyond rounding",) and "only one" not in ch.change
    ]
    if patient:
        if not changed:
            return "Compared with your earlier scan, the program measured no clear change. Your doctor can compare them properly."
        return (
            "Compared with your earlier scan, the program measured some differences (listed for your doctor below). "
            "Differences in numbers can come from how the pictures were taken, not only from a change in you."
        )
    if not changed:
        return "Compared with the prior study, no tool measured a change beyond its noise."
    return "Compared with the prior study: " + "; ".join(f"{ch.tool}: {ch.change}" for ch in changed) + "."
