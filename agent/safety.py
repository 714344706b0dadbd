"""The rules an answer keeps whatever the model wrote: no doses or prescriptions, no certainty beyond the evidence,
never the assistant's own instructions. A prompt asks the model for this; this module makes sure of it, because a
question, a DICOM header or a retrieved passage can carry text written to make the model do otherwise.

Untrusted text reaches the model fenced (`fence`) and named as data, never as instructions."""

from __future__ import annotations

import re
from functools import lru_cache

OPEN, CLOSE = "<<<", ">>>"
_DOSING = re.compile(
    r"\b\d+(?:[.,]\d+)?\s?(?:mg|mcg|µg|ug|micrograms?|milligrams?|grams?|ml|millilit(?:er|re)s?|units?|iu|mmol)\b"
    r"|\b(?:prescribe[sd]?|prescription|dosage|dosing|dose of|take \d+|tablets? (?:a|per|every|each) day)\b",
    re.IGNORECASE,
)
_CERTAIN = re.compile(
    r"\b(?:definitely|certainly|100 ?%|without (?:any )?doubt|guaranteed|is certain|are certain"
    r"|no need to see (?:a|your) (?:doctor|clinician))\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_SHINGLE = 8  # words in a row shared with the instructions that count as revealing them


def fence(text: str) -> str:
    """Untrusted text as data for the prompt: between the fences, with any fence inside it taken out."""
    return f"{OPEN}{text.replace(OPEN, '').replace(CLOSE, '')}{CLOSE}"


def screen(text: str, instructions: str) -> tuple[str, list[str]]:
    """`text` without the sentences that break a rule, and one warning per kind of sentence left out."""
    secret = _instruction_shingles(instructions)
    kept, reasons = [], []
    for sentence in filter(str.strip, _SENTENCE.split(text)):
        if reason := _broken_rule(sentence, secret):
            reasons.append(reason)
        else:
            kept.append(sentence.strip())
    warnings = [f"a sentence with {r} was left out" for r in dict.fromkeys(reasons)]
    return "\n".join(kept) if reasons else text, warnings


def _broken_rule(sentence: str, secret: frozenset[tuple[str, ...]]) -> str | None:
    if _DOSING.search(sentence):
        return "a dose or a prescription (Vesalius gives neither: ask a clinician)"
    if _CERTAIN.search(sentence):
        return "a claim of certainty the evidence cannot give"
    if secret & _shingles(sentence):
        return "the assistant's own instructions"
    return None


@lru_cache(maxsize=8)  # the instructions are the same on every call: split them once
def _instruction_shingles(instructions: str) -> frozenset[tuple[str, ...]]:
    return frozenset(_shingles(instructions))


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1)}
