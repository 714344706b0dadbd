"""How fast `vesalius eval run` gets through questions, against baselines measured in the same run.

    .venv/bin/python bench/eval_throughput.py [--questions 96] [--concurrency 8] [--batch 32] [--out bench/EVAL.md]

On VQA-RAD questions from the shared data (the by-image dev split, in file order), with the tiny random Gemma3
(scripts/build_tiny_gemma3.py) in real vLLM on CPU; the model is random, so only the speed means anything:
- model mode in vLLM's in-process engine (`--model-dir`): one question per engine call (the baseline), then
  `--batch` questions per call. One engine serves both, started and warmed before either is timed; each starts
  with an empty image cache;
- model mode against a vLLM server: one request at a time, then `--concurrency` at once;
- embedded mode (the agent, no model server), and the run loop's own cost per question: the run's wall time per
  question less the agent's own time, which each record holds (threads, scoring, an fsync per line).

The client and the server share the machine: on 2 cores the server's per-request work (image processing,
tokenising, scheduling) and the client's image encoding compete for the same CPU, so what batching can gain here
says little about a GPU server, where decoding dominates and batches share it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's vLLM server, started the same way

from vllm_server import VLLM_PYTHON, serve

import vesalius
from vesalius.eval.engine_predictor import EnginePredictor
from vesalius.eval.evaluate import choose, scorer_for
from vesalius.eval.loaders import load_benchmark
from vesalius.eval.model_prompt import ImageParts
from vesalius.eval.predictors import EmbeddedPredictor
from vesalius.eval.runner import finished, run
from vesalius.eval.server_predictor import ServerPredictor


class _Tmp:
    """What the test fixture asks of pytest's tmp_path_factory."""

    def __init__(self, root: Path):
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name, dir=self.root))
        return path


def timed_run(items, predictor, out: Path, concurrency: int) -> float:
    start = time.perf_counter()
    run(
        items,
        predictor,
        scorer_for("vesalius", "vqa-rad"),
        out,
        {"bench": True},
        concurrency=concurrency,
        progress=False,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "vqa-rad" / "trainset.json")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("EVAL.md"))
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} is missing: this benchmark reads VQA-RAD from ../shared/data")
    items = choose(load_benchmark("vqa-rad", args.data).items, "dev", args.questions)
    n = len(items)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server_gen = serve(_Tmp(tmp))
        server = next(server_gen)
        try:
            warm = ServerPredictor([server.url], server.model)
            timed_run(items[:4], warm, tmp / "warm", 1)  # the server's first requests compile and allocate
            warm.close()
            # A fresh predictor each: both read and encode every image once (its cache would favour the second).
            with_one, with_many = (ServerPredictor([server.url], server.model) for _ in range(2))
            one = timed_run(items, with_one, tmp / "one", 1)
            many = timed_run(items, with_many, tmp / "many", args.concurrency)
            with_one.close()
            with_many.close()
        finally:
            next(server_gen, None)  # stops the server and its engine processes
        engine = EnginePredictor(server.model_dir, tmp / "engine.log", python=VLLM_PYTHON)
        try:
            timed_run(items[:4], engine, tmp / "warm-engine", 4)  # starts the engine
            engine.images = ImageParts()
            single = timed_run(items, engine, tmp / "single", 1)
            engine.images = ImageParts()
            batched = timed_run(items, engine, tmp / "batched", args.batch)
        finally:
            engine.close()
        rows += [
            ("model mode, vLLM engine, one question per call", n / single),
            (f"model mode, vLLM engine, {args.batch} questions per call", n / batched),
            ("model mode, vLLM server, one request at a time", n / one),
            (f"model mode, vLLM server, {args.concurrency} requests at once", n / many),
        ]
        settings = vesalius.load_settings({"HOME": str(tmp)}, cache_dir=tmp / "cache", data_dir=tmp / "data")
        embedded = EmbeddedPredictor(settings, tmp / "agent")
        timed_run(items[:4], embedded, tmp / "warm-embedded", 1)  # knowledge base built, models loaded
        through_runner = timed_run(items, embedded, tmp / "embedded", 1)
        # Each record's latency is the predictor's own time (the agent's `ask`): the rest of the wall time is the
        # run loop (threads, scoring, writing and fsyncing each line), measured in the same run.
        direct = [r.latency_s for r in finished(tmp / "embedded").values()]
        embedded.close()
    rows.append(("embedded mode (the agent, no model server)", n / through_runner))
    overhead_ms = 1000 * (through_runner / n - statistics.mean(direct))
    engine_ratio, server_ratio = rows[1][1] / rows[0][1], rows[3][1] / rows[2][1]
    table = [
        "# Evaluation throughput",
        "",
        (__doc__ or "").split("\n\n")[0].strip(),
        "",
        (
            f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"{n} VQA-RAD dev questions; `.venv/bin/python bench/eval_throughput.py --questions {args.questions} "
            f"--concurrency {args.concurrency} --batch {args.batch}`."
        ),
        "",
        "| measure | value |",
        "|---|---:|",
        *(f"| {name} | {qps:.2f} questions/s |" for name, qps in rows),
        f"| engine: batched / one question per call | {engine_ratio:.1f}x |",
        f"| server: concurrent / one request at a time | {server_ratio:.1f}x |",
        f"| embedded: the agent's own time per question (mean) | {1000 * statistics.mean(direct):.0f} ms |",
        f"| embedded: the run loop's own cost per question (wall time / n - the agent's time) | {overhead_ms:.1f} ms |",
        "",
    ]
    args.out.write_text("\n".join(table))
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
