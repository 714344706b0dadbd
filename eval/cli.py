"""`vesalius eval`: run a medical QA benchmark against the embedded agent, scored under a named scheme."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vesalius.agent.terminal import echo, echo_json

SCHEMES = ("vesalius", "medevalkit", "multimedeval")


@click.group("eval")
def eval_group() -> None:
    """Run benchmarks (VQA-RAD, SLAKE, PathVQA, PMC-VQA, MedQA, PubMedQA, MedMNIST, class folders, JSONL)."""


@eval_group.command("run")
@click.argument("benchmark", required=False)
@click.option("--data", type=click.Path(path_type=Path), help="the benchmark's file as published")
@click.option("--images", type=click.Path(path_type=Path), help="the image folder (default: images/ beside --data)")
@click.option(
    "--mode",
    type=click.Choice(["embedded", "model", "agent"]),
    default="embedded",
    show_default=True,
    help="embedded: the agent without a model server; model: the multimodal model alone (--model-dir or "
    "--model-url); agent: the whole agent with the model at --model-url",
)
@click.option("--model-url", "model_urls", multiple=True, help="an OpenAI-compatible server (repeat: round-robin)")
@click.option("--model-name", help="the served model (default: the first the server lists)")
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    help="a local model folder, run by vLLM's in-process engine (vllm.LLM) in batches of --concurrency",
)
@click.option(
    "--engine-arg",
    "engine_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="a vllm.LLM argument for --model-dir (VALUE as JSON, else text), e.g. max_model_len=8192",
)
@click.option(
    "--split",
    type=click.Choice(["all", "dev", "train", "dev-question", "train-question"]),
    default="all",
    show_default=True,
    help="dev: a fifth of the images (by image, seed 0), never in train; dev-question: a fifth of the questions, "
    "whose images train also shows (like VQA-RAD's official split)",
)
@click.option("--limit", type=int, help="the first N questions (after --split)")
@click.option("--concurrency", default=1, show_default=True, help="questions asked at once")
@click.option("--scoring", type=click.Choice(SCHEMES), default="vesalius", show_default=True)
@click.option("--skip-bad", is_flag=True, help="count malformed items as skipped instead of stopping")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="run folder; rerun to resume")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print summary.json")
@click.option(
    "--from-manifest",
    "manifest",
    type=click.Path(path_type=Path),
    help="repeat the run this manifest.json describes (same data, options and scoring) into --out",
)
def run_cmd(benchmark, data, images, mode, model_urls, model_name, model_dir, engine_args, split, limit, concurrency, scoring, skip_bad, out,
            quiet, as_json, manifest) -> None:  # fmt: skip
    """Ask every question of BENCHMARK (one fresh conversation each) and score the answers.

    Writes OUT/manifest.json, OUT/predictions.jsonl and OUT/summary.json; rerunning with the same OUT continues
    where an interrupted run stopped. In embedded and agent mode the scored answer is the agent's short answer: a
    question nothing answers is scored wrong, never guessed. With --model-dir, --concurrency is the engine's batch."""
    from vesalius.agent.config import load_settings
    from vesalius.eval.evaluate import EvalOptions, evaluate, from_manifest

    if manifest is not None:
        from vesalius.eval.evaluate import drift

        options, original = from_manifest(manifest, out, tuple(model_urls))
        result, summary = evaluate(options, load_settings(), progress=not quiet)
        _show(summary, as_json, result)
        if changed := drift(original, summary["manifest"]):
            echo(f"note: this reproduction ran with another {', '.join(changed)} than the original", err=True)
        return
    if benchmark is None or data is None:
        raise click.UsageError("give BENCHMARK and --data (or --from-manifest)")
    options = EvalOptions(
        benchmark=benchmark,
        data=data,
        out=out,
        images=images,
        mode=mode,
        model_urls=tuple(model_urls),
        model_name=model_name,
        model_dir=model_dir,
        engine_args=_engine_args(engine_args),
        split=split,
        limit=limit,
        scoring=scoring,
        concurrency=concurrency,
        skip_bad=skip_bad,
    )
    result, summary = evaluate(options, load_settings(), progress=not quiet)
    _show(summary, as_json, result)


def _engine_args(given: tuple[str, ...]) -> dict:
    args = {}
    for pair in given:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--engine-arg")
        if key == "model":
            raise click.BadParameter("the model is --model-dir", param_hint="--engine-arg")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


def _show(summary: dict, as_json: bool, result) -> None:
    if as_json:
        echo_json(json.dumps(summary, indent=2, default=str))
    else:
        from vesalius.eval.report import summary_table

        echo(summary_table(summary))
    if result.interrupted:
        echo(f"interrupted after {result.done} of {result.total}: run the same command again to continue", err=True)
        sys.exit(130)


@eval_group.command("report")
@click.argument("run", type=click.Path(path_type=Path))
def report_cmd(run) -> None:
    """Write RUN/report.md: the summary, accuracy by question type, organ, language and what answered, with plots
    (and ROC and calibration for classification sets) under RUN/plots/."""
    from vesalius.eval.report import write_report

    echo(str(write_report(run)))


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="the comparison as JSON")
def compare_cmd(run_a, run_b, as_json) -> None:
    """RUN_A against RUN_B on the questions both finished: paired differences with 95% bootstrap intervals, and
    McNemar's exact test on the closed questions."""
    from vesalius.eval.compare import compare, comparison_table

    result = compare(run_a, run_b)
    if as_json:
        echo_json(json.dumps(result, indent=2))
    else:
        echo(comparison_table(result))
