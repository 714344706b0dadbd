"""Questions that only make sense after an earlier turn: "how sure are you?", "show me the heatmap", "and on the
left?". Each is read against the previous turn, routed as that turn's question, and answered for what it asks."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from vesalius.vision.models.probability import shown
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.tools.vqa_tool import NAME as VQA_TOOL

_CONFIDENCE = re.compile(
    r"\bhow (?:sure|certain|confident|reliable|accurate|likely)\b|\bconfidence\b|\bare you (?:sure|certain)\b"
    r"|\bcould (?:you|it|that) be wrong\b"
)
_HEATMAP = re.compile(r"\bheat ?maps?\b|\bshow me (?:where|it|the (?:area|region|spot)s?)\b|\bhighlight")
SIDE = re.compile(r"\b(left|right)\b")
# A question that leans on the last one: "and ...", "what about ...", or too short to stand alone.
_ELLIPTICAL = re.compile(r"^(?:and|also|what about|how about|same for|and what about|then)\b")
_SHORT_WORDS = 4


class FollowUp(BaseModel):
    kind: Literal["confidence", "heatmap", "side", "elliptical"]
    refers_to: int = Field(description="the turn it follows up")
    side: Literal["left", "right"] | None = None
    routed_as: str = Field(description="the question as routed: the earlier question with this one")
    earlier: str = Field(description="the earlier question, as it was routed")

    @property
    def about_evidence(self) -> bool:
        """It asks about the earlier answer's evidence, not a new question about the image."""
        return self.kind in ("confidence", "heatmap")


def read_follow_up(question: str, history: list[dict[str, Any]]) -> FollowUp | None:
    if not history:
        return None
    q = " ".join(question.lower().split())
    last = history[-1]
    earlier = last.get("routed") or last["question"]
    side = SIDE.search(q)
    if _CONFIDENCE.search(q):
        kind = "confidence"
    elif _HEATMAP.search(q):
        kind = "heatmap"
    elif _ELLIPTICAL.search(q) or (side and len(q.split()) <= _SHORT_WORDS):  # "left?" leans; "what modality?" not
        kind = "side" if side else "elliptical"
    else:
        return None
    return FollowUp(
        kind=kind,
        refers_to=int(last.get("turn") or len(history)),
        side=side.group(1) if side else None,
        routed_as=f"{earlier} {question}",
        earlier=earlier,
    )


def follow_up_lead(follow_up: FollowUp, tools: list[ToolResult], patient: bool) -> str | None:
    """The first sentence for a follow-up that asks about the evidence itself, not the image again."""
    if follow_up.kind == "confidence":  # the VQA model's answer is a probability too, and often the one given
        return _confidence([t for t in tools if t.applied], patient)
    ran = [t for t in tools if t.applied and t.tool != VQA_TOOL]
    if follow_up.kind == "heatmap":
        maps = [t for t in ran if t.heatmap_path]
        if not maps:
            return "No tool drew a heatmap for this study and question" + (
                ": the heatmap tools apply to chest X-rays and to paired, symmetric views."
                if not any(t.regions for t in ran)
                else "."
            )
        if patient:  # the map itself is shown with the answer; its file name is for the clinician's details
            return (
                "The program drew a colour map over your picture. Bright colours mark places that look less like "
                "the usual pictures it learnt from. They are not a diagnosis."
            )
        return "Heatmap: " + "; ".join(f"{t.heatmap_path} ({t.tool}{_regions(t)})" for t in maps) + "."
    if follow_up.kind == "side" and follow_up.side:
        return _on_side(ran, follow_up.side, patient)
    return None


def _confidence(ran: list[ToolResult], patient: bool) -> str:
    trained = [(t, p) for t in ran if t.model is not None for p in t.probabilities[: 1 if t.tool == VQA_TOOL else None]]
    if not trained:
        if patient:
            return "The program has no trained model for this kind of picture, so it cannot put a number on how sure it is."
        return (
            "No trained model estimated a probability here: the measurements are heuristics, so there is no "
            "confidence figure to give."
        )
    parts = []
    for t, p in trained:
        if patient:
            what = f"the answer '{p.label}'" if t.tool == VQA_TOOL else p.label
            chance = min(99, max(1, round(p.probability * 100)))
            parts.append(f"the program puts the chance of {what} at about {chance} in 100")
        else:
            where = "" if p.in_training_range is not False else ", but the image is outside its training range"
            what = f"its answer '{p.label}'" if t.tool == VQA_TOOL else p.label
            parts.append(
                f"{t.tool}: probability of {what} {shown(p.probability)} (calibrated; {t.model.validation}{where})"  # type: ignore[union-attr]
            )
    if patient:
        return (
            "How sure: "
            + "; ".join(parts)
            + ". Such programs are right most of the time on pictures like the ones they learnt from, not always."
        )
    return "How sure, as measured on validation images, not on this patient: " + "; ".join(parts) + "."


def _regions(t: ToolResult) -> str:
    if not t.regions:
        return ""
    top = t.regions[0]
    return f"; most unusual region at ({top.x},{top.y}), {top.side or 'side not recorded'}"


_IMAGE_SIDE = re.compile(r"image (left|right)")


def _on_side(ran: list[ToolResult], side: str, patient: bool) -> str:
    """`side` is the patient's: by the radiological convention (frontal films, axial slices) it is the other side
    of the image, which is how the tools record where a region lies."""
    image_side = "right" if side == "left" else "left"
    marked = [
        (t, r)
        for t in ran
        for r in t.regions
        if (m := _IMAGE_SIDE.search((r.side or "").lower())) and m.group(1) == image_side
    ]
    where = f"the patient's {side} (image {image_side}, as films and axial slices are shown)"
    if not marked:
        looked = any(t.regions or t.heatmap_path for t in ran)
        if patient:
            return f"The program marked nothing unusual on your {side} side of the picture."
        return f"On {where}: no tool marked an unusual region there" + (
            "." if looked else " (no tool here maps regions on this study)."
        )
    if patient:
        return f"The program marked {len(marked)} spot(s) on your {side} side that look different from usual pictures."
    regions = "; ".join(
        f"{t.tool} region at ({r.x},{r.y}) {r.width}x{r.height} px, score {r.score:g} {r.unit}" for t, r in marked
    )
    return f"On {where}: {regions}."
