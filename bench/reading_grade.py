"""How easy the patient answers are to read: Flesch-Kincaid grade of the answers to a committed set of patient
questions, against the clinician answers to the same questions measured in the same run.

    .venv/bin/python bench/reading_grade.py [--out bench/READABILITY.md]

Studies: the CT and MR slices that ship with pydicom, a blank picture no model knows and, when ../shared/data is
there, a chest film from the pneumonia set. Each question is asked once for a patient and once for a clinician on
a new thread, with no model server (the embedded default). The text scored is what a reader sees first: the
direct answer and the answer (citations' passages are in it). Grades come from the `readability` package
(Kincaid grade); the target for patients is 8 or below.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import readability
from PIL import Image
from pydicom.data import get_testdata_file

QUESTIONS = [
    "What does this scan show?",
    "Is there anything wrong?",
    "Should I be worried?",
    "Is there a tumour?",
    "Is there pneumonia?",
    "What is a pleural effusion?",
    "What does hydrocephalus mean?",
    "Is there fluid around my lungs?",
]
# Asked on a thread after its first question, "Is there anything wrong?"; then the next study is opened in the same
# thread and compared with it.
FOLLOW_UPS = ["How sure are you?", "And on the left?", "Show me the heatmap"]
COMPARE = "What changed since my last scan?"


def grade(text: str) -> float:
    """Kincaid grade; the package wants one sentence per line and tokens apart."""
    text = re.sub(r"\[\d+\]", "", text.replace("\n- ", "\n"))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?:])\s+|\n+", text) if s.strip()]
    tokenised = "\n".join(re.sub(r"([.,;:!?()'\"])", r" \1 ", s) for s in sentences)
    return readability.getmeasures(tokenised, lang="en")["readability grades"]["Kincaid"]


def studies(tmp: Path) -> dict[str, Path]:
    found = {"CT slice": Path(get_testdata_file("CT_small.dcm")), "MR slice": Path(get_testdata_file("MR_small.dcm"))}
    blank = tmp / "blank.png"
    Image.new("L", (256, 256), 128).save(blank)
    found["blank picture"] = blank
    films = Path(__file__).parents[1] / ".." / "shared" / "data" / "kermany-cxr"
    film = next(iter(sorted(films.rglob("*.jpeg"))), None) if films.is_dir() else None
    if film:
        found["chest film"] = film
    return found


def conversation_rows(agent, paths: dict[str, Path]) -> list[tuple[str, str, float, float]]:
    """Follow-ups on each study's thread, and each study compared with the one before it in one thread."""
    names = list(paths)
    asked: dict[tuple[str, str], dict[str, float]] = {}
    for audience in ("patient", "clinician"):
        thread = None
        for i, name in enumerate(names):
            if thread is not None:
                answer = agent.ask(COMPARE, study=paths[name], thread_id=thread)
                asked.setdefault((f"{names[i - 1]} then {name}", COMPARE), {})[audience] = grade(
                    f"{answer.direct_answer}\n{answer.answer}"
                )
            first = agent.ask("Is there anything wrong?", study=paths[name], audience=audience)
            thread = first.thread_id
            for question in FOLLOW_UPS:
                answer = agent.ask(question, thread_id=thread)
                asked.setdefault((name, f"(follow-up) {question}"), {})[audience] = grade(
                    f"{answer.direct_answer}\n{answer.answer}"
                )
    return [(name, q, g["patient"], g["clinician"]) for (name, q), g in asked.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("READABILITY.md"))
    args = parser.parse_args()
    from vesalius.agent.config import load_settings
    from vesalius.agent.service import Vesalius

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VESALIUS_DATA_DIR": str(Path(tmp) / "data")}
        env.pop("VESALIUS_VLM_URL", None)
        with Vesalius(load_settings(env)) as agent:
            for name, path in studies(Path(tmp)).items():
                for question in QUESTIONS:
                    grades = {}
                    for audience in ("patient", "clinician"):
                        answer = agent.ask(question, study=path, audience=audience)
                        grades[audience] = grade(f"{answer.direct_answer}\n{answer.answer}")
                    rows.append((name, question, grades["patient"], grades["clinician"]))
                    print(
                        f"{name:14s} {question:35s} {grades['patient']:5.1f} {grades['clinician']:5.1f}",
                        file=sys.stderr,
                    )
            rows += conversation_rows(agent, studies(Path(tmp)))
    studies_seen = {r[0] for r in rows if not r[1].startswith("(follow-up)") and r[1] != COMPARE}
    patient = [r[2] for r in rows]
    clinician = [r[3] for r in rows]
    lines = [
        "# Readability of patient answers",
        "",
        (
            f"Measured {date.today()} by `bench/reading_grade.py` on {platform.machine()}, Python {platform.python_version()}: "
            f"{len(QUESTIONS)} questions x {len(studies_seen)} studies, then {len(FOLLOW_UPS)} follow-ups on each "
            "study's thread and each study compared with the one before it in a thread; no model server; Kincaid grade "
            "(US school year) from the `readability` package. Target for patients: 8 or below."
        ),
        "",
        "| | patient answers | clinician answers (same questions, same run) |",
        "|---|---:|---:|",
        f"| median grade | **{statistics.median(patient):.1f}** | {statistics.median(clinician):.1f} |",
        f"| highest grade | {max(patient):.1f} | {max(clinician):.1f} |",
        (
            f"| answers at grade 8 or below | {sum(g <= 8 for g in patient)} of {len(patient)} | "
            f"{sum(g <= 8 for g in clinician)} of {len(clinician)} |"
        ),
        "",
        "| study | question | patient | clinician |",
        "|---|---|---:|---:|",
        *(f"| {s} | {q} | {p:.1f} | {c:.1f} |" for s, q, p, c in rows),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
