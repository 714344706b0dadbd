"""How long a question takes, and what the agent adds over the work a question cannot avoid.

    .venv/bin/python bench/agent_latency.py [--repeats 20] [--out bench/RESULTS.md]

Measured in one run, on the CT slice bundled with pydicom, with no model server (the embedded default):
- baseline: the unavoidable parts, done by hand: read and render the study, embed the question and search FAISS;
- agent: `Vesalius.ask`: the same plus routing, the tools, composing, and the SQLite checkpoint of the thread
  (it reuses the study it loaded, as it does within a conversation, so its extra time is the graph's own);
- cold CLI: a whole `vesalius ask` process (imports, model load, cached index);
- index build: the starter knowledge base (imaging knowledge) from scratch in an empty cache;
- with `--vlm-url URL`: the agent again, with the model server at URL planning the tools (structured outputs)
  and answering (max 32 tokens); its overhead is the whole question less the time spent waiting for the model.
Planning, claims and traces are on, as by default. Medians and p99 of `--repeats` runs; the ratio is agent / baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from pydicom.data import get_testdata_file

from vesalius.agent.config import load_settings
from vesalius.agent.service import Vesalius
from vesalius.retrieval import KnowledgeBase
from vesalius.vision import load_study

QUESTIONS = [
    "Is there a pleural effusion on this CT?",
    "What is the attenuation of the tissue?",
    "Could this be pneumonia?",
    "Describe this study",
    "What does pneumothorax mean?",
]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


class ModelClock:
    """Time spent inside the model client's calls (planning and answering): the part that is generation."""

    def __init__(self, client):
        self.client, self.spent = client, 0.0
        self._chat = client.chat
        client.chat = self.chat

    def chat(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._chat(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--vlm-url", help="also measure with this OpenAI-compatible model server")
    args = parser.parse_args()
    study = get_testdata_file("CT_small.dcm")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("building the starter knowledge base in an empty cache ...", file=sys.stderr)
        build_s = timed(lambda: KnowledgeBase.open(tmp / "cache" / "kb"))
        kb = KnowledgeBase.open(tmp / "cache" / "kb")
        settings = load_settings({"HOME": str(tmp)}, cache_dir=tmp / "cache", data_dir=tmp / "data")
        baseline, agent_s = [], []
        with Vesalius(settings) as agent:
            agent.ask(QUESTIONS[0], study=study)  # warm: models loaded, index read
            for i in range(args.repeats):
                q = QUESTIONS[i % len(QUESTIONS)]
                baseline.append(timed(lambda q=q: (load_study(study), kb.search(q, k=5))))
                agent_s.append(timed(lambda q=q: agent.ask(q, study=study)))
                print(f"\r{i + 1}/{args.repeats} questions", end="", file=sys.stderr)
        print(file=sys.stderr)
        with_model, overhead, planned = [], [], 0
        if args.vlm_url:
            with Vesalius(settings.model_copy(update={"vlm_url": args.vlm_url, "vlm_max_tokens": 32})) as agent:
                agent.ask(QUESTIONS[0], study=study)
                model_name = agent.deps.vlm.model
                clock = ModelClock(agent.deps.vlm)
                for i in range(args.repeats):
                    q = QUESTIONS[i % len(QUESTIONS)]
                    clock.spent = 0.0
                    start = time.perf_counter()
                    planned += agent.ask(q, study=study).route.planner == "model"
                    with_model.append(time.perf_counter() - start)
                    overhead.append(with_model[-1] - clock.spent)
                    print(f"\r{i + 1}/{args.repeats} questions with the model", end="", file=sys.stderr)
            print(file=sys.stderr)
        env = {"HOME": str(tmp), "VESALIUS_CACHE_DIR": str(tmp / "cache"), "VESALIUS_DATA_DIR": str(tmp / "data")}
        cli = str(Path(sys.executable).with_name("vesalius"))
        cold = [
            timed(
                lambda: subprocess.run(
                    [cli, "ask", "--study", study, QUESTIONS[0]], env=env, check=True, capture_output=True
                )
            )
            for _ in range(3)
        ]

    b, a = statistics.median(baseline), statistics.median(agent_s)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("baseline: load study + embed + FAISS search (warm)", f"{b * 1000:.1f} ms"),
        ("agent: `Vesalius.ask`, no model server (warm, study already loaded)", f"{a * 1000:.1f} ms"),
        ("agent, no model server: p99", f"{p99(agent_s) * 1000:.1f} ms"),
        ("ratio agent / baseline", f"{a / b:.2f}x"),
        *(
            [
                (
                    f"agent with model `{model_name}` planning and answering, 32 tokens (warm)",
                    f"{statistics.median(with_model) * 1000:.1f} ms",
                ),
                (
                    "overhead with the model: all but the model's calls, median",
                    f"{statistics.median(overhead) * 1000:.1f} ms",
                ),
                ("overhead with the model: p99", f"{p99(overhead) * 1000:.1f} ms"),
                ("questions the model planned (the rest fell back to the rules)", f"{planned} of {len(overhead)}"),
            ]
            if with_model
            else []
        ),
        ("cold CLI: one `vesalius ask` process (median of 3)", f"{statistics.median(cold):.2f} s"),
        ("knowledge index build from an empty cache", f"{build_s:.2f} s"),
        ("peak resident memory of this process", f"{peak_mb:.0f} MB"),
    ]
    table = "\n".join(["| measure | median |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    text = (
        f"# Agent latency\n\nMeasured {date.today()} by `bench/agent_latency.py --repeats {args.repeats}` on "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; study: pydicom's `CT_small.dcm`; questions cycle through "
        f"{len(QUESTIONS)} kinds (tools and no tools).\n\n{table}\n"
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
