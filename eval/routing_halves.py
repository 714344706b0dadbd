"""The rule router's intent accuracy on the two halves of the VQA-RAD routing questions, split by image.

The rules in agent/router.py were tuned on SLAKE's questions and on half A (by a hash of the image name); half B
was not looked at while tuning, so its number is the honest one. Needs the shared data (VQA-RAD's trainset.json,
for each question's image).

    .venv/bin/python -m vesalius.eval.routing_halves [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from vesalius.agent.router import plan_route
from vesalius.eval.routing import bundled_data, load_rows, registry_tools, wilson


def half(image: str) -> str:
    return "A" if int(hashlib.sha256(image.encode()).hexdigest(), 16) % 2 == 0 else "B"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    items = json.loads((args.shared / "vqa-rad" / "trainset.json").read_text())
    image = {str(x["qid"]): x["image_name"] for x in items}
    available = registry_tools()
    counts = {"A": [0, 0], "B": [0, 0]}
    for row in load_rows(bundled_data(), available):
        if row.source == "vqa-rad":
            side = counts[half(image[row.id])]
            side[0] += plan_route(row.question, available).intent == row.intent
            side[1] += 1
    for name, (right, n) in counts.items():
        low, high = wilson(right, n)
        role = "tuned on" if name == "A" else "held out from tuning"
        print(f"VQA-RAD half {name} ({role}): intent accuracy {right / n:.1%} [{low:.1%}, {high:.1%}] of {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
