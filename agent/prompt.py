"""The messages sent to the multimodal model: safety rules, earlier turns, the image, tool results and sources."""

from __future__ import annotations

from typing import Any

from agent.vlm_client import image_part
from vision import Study

SYSTEM = (
    "You are Vesalius, a medical imaging assistant. Answer the question about the attached image. "
    "Rules: speak in likelihoods, never certain verdicts; say what is uncertain; put anything urgent first; "
    "use the tool results as measurements of the image, knowing that heuristic tools are not diagnoses; "
    "when you use a numbered source, cite it as [n]; if the person asking is a patient, use plain words "
    "and advise them to discuss the result with their clinician."
)
_HISTORY_CHARS = 600  # earlier answers are context, not the subject: keep the prompt short


def build_messages(
    question: str,
    study: Study,
    tool_results: list[dict[str, Any]],
    citations: list[dict[str, Any]],
    history: list[dict[str, Any]],
    audience: str,
    image_max_side: int,
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for turn in history:
        messages.append({"role": "user", "content": turn["question"]})
        messages.append({"role": "assistant", "content": turn["answer"][:_HISTORY_CHARS]})
    lines = [
        f"Study: {study.summary.one_line()}",
        f"Asked by: {audience}",
        f"Question: {question}",
        "",
        "Tool results:",
    ]
    ran = [t for t in tool_results if t["applied"]]
    lines += [f"- {t['tool']}: {t['summary']}" for t in ran] or ["- none ran"]
    lines += ["", "Sources:"]
    lines += [
        f"[{c['number']}] {c['name']} (UMLS {c['umls_cui'] or '-'}, SNOMED CT {c['snomed_ct'] or '-'}): {c['passage']}"
        for c in citations
    ] or ["(none matched)"]
    content = [image_part(study.rendered(image_max_side)), {"type": "text", "text": "\n".join(lines)}]
    messages.append({"role": "user", "content": content})
    return messages
