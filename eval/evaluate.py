"""One evaluation run, start to finish: load the benchmark, choose the items, predict, score, summarise.

The run folder's files are a contract other tools read (docs/evaluation.md): manifest.json, predictions.jsonl
and summary.json. `summary.json` is written again from predictions.jsonl at the end of every run, so a resumed
run gives exactly the summary an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vesalius import Settings
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem, split_by_group
from vesalius.eval.runner import MANIFEST, Prediction, RunResult, file_digest, finished, run, run_json

Split = Literal["all", "dev", "train", "dev-question", "train-question"]
from vesalius.splits import DEV_FRACTION
from vesalius.splits import SEED as SPLIT_SEED

SUMMARY = "summary.json"
_SCORED_KIND = {"choice": "mc"}  # the loaders' name for multiple choice, and the scorers'


@dataclass(frozen=True)
class EvalOptions:
    benchmark: str
    data: Path
    out: Path
    images: Path | None = None
    mode: Literal["embedded", "model", "agent"] = "embedded"
    model_urls: tuple[str, ...] = ()
    model_name: str | None = None
    model_dir: Path | None = None
    engine_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    split: Split = "all"
    limit: int | None = None
    scoring: str = "vesalius"
    concurrency: int = 1
    skip_bad: bool = False

    def manifest(self) -> dict[str, Any]:
        """What identifies the run (the output folder aside)."""
        fields = dataclasses.asdict(self)
        fields.pop("out")
        fields.pop("model_urls")  # a resumed run may use other servers for the same model (the predictor names it)
        return {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}


def from_manifest(path: Path, out: Path, model_urls: tuple[str, ...] = ()) -> tuple[EvalOptions, dict[str, Any]]:
    """The options of the run `path` describes, into `out`, and its manifest; the data file must be the one that
    run read."""
    manifest = run_json(Path(path), "run manifest", "Give the manifest.json of a finished `vesalius eval run`")
    try:
        fields = {f.name for f in dataclasses.fields(EvalOptions)} - {"out", "model_urls"}
        given = {k: manifest[k] for k in fields if k in manifest}
        options = EvalOptions(
            **{
                **given,
                "data": Path(given["data"]),
                **{k: Path(given[k]) if given.get(k) else None for k in ("images", "model_dir")},
            },
            out=out,
            model_urls=model_urls,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchmarkError(
            f"{path} is not a readable run manifest ({type(exc).__name__}: {exc})",
            "Give the manifest.json of a finished `vesalius eval run`",
        ) from None
    recorded = manifest.get("data_file", {}).get("sha256")
    if recorded and options.data.is_file() and file_digest(options.data)["sha256"] != recorded:
        raise BenchmarkError(
            f"{options.data} is not the file the run read (its SHA-256 differs from the manifest's)",
            "Restore that file; a reproduction needs the same data",
        )
    if out.resolve() == Path(path).resolve().parent:
        raise BenchmarkError("--out is the run being reproduced", "Give a new folder for the reproduction")
    return options, manifest


def drift(original: dict[str, Any], reproduced: dict[str, Any]) -> list[str]:
    """What a reproduction ran with that the original did not: code, weights, model files, prompt, settings."""
    changed = [k for k in ("vesalius", "code_sha256") if original.get(k) != reproduced.get(k)]
    before, after = original.get("predictor") or {}, reproduced.get("predictor") or {}
    changed += [f"predictor.{k}" for k in sorted({*before, *after}) if before.get(k) != after.get(k)]
    return changed


def choose(items: tuple[EvalItem, ...], split: Split, limit: int | None) -> list[EvalItem]:
    if split != "all":
        by = "id" if split.endswith("-question") else "group"
        train, dev = split_by_group(items, DEV_FRACTION, SPLIT_SEED, by=by)
        items = dev if split.startswith("dev") else train
    if limit is not None:
        if limit < 1:
            raise BenchmarkError(f"--limit {limit} is below 1", "Give a positive number of questions, or leave it out")
        items = items[:limit]
    return list(items)


def scorer_for(scheme: str, benchmark: str):
    from vesalius.eval.scoring import get_scorer

    try:
        score = get_scorer(scheme)
    except ValueError as exc:
        raise BenchmarkError(str(exc), "Use --scoring vesalius, medevalkit or multimedeval") from None
    extra = {"dataset": benchmark.removesuffix("-questions")} if scheme == "medevalkit" else {}

    def scored(item: EvalItem, prediction: Prediction) -> dict[str, Any]:
        kind = _SCORED_KIND.get(item.kind, item.kind)
        result = score(kind, prediction.text or "", item.answer, item.options or None, **extra)
        return dataclasses.asdict(result)

    return scored


def evaluate(options: EvalOptions, settings: Settings, *, progress: bool = True) -> tuple[RunResult, dict[str, Any]]:
    from vesalius.eval.loaders import load_benchmark

    loaded = load_benchmark(options.benchmark, options.data, options.images, skip_bad=options.skip_bad)
    items = choose(loaded.items, options.split, options.limit)
    if not items:
        raise BenchmarkError(f"no questions left in {options.data} after --split {options.split}", "Use --split all")
    manifest = {
        **options.manifest(),
        "data_file": file_digest(options.data) if options.data.is_file() else {"path": str(options.data.resolve())},
        "scoring_version": 1,
        "skipped": len(loaded.skipped),
    }
    predictor = _predictor(options, settings)
    try:
        result = run(
            items,
            predictor,
            scorer_for(options.scoring, options.benchmark),
            options.out,
            manifest,
            concurrency=options.concurrency,
            progress=progress,
        )
    finally:
        predictor.close()
    summary = summarise_run(options, items, loaded.skipped)
    return result, summary


def _predictor(options: EvalOptions, settings: Settings):
    urls, model_dir, mode = list(options.model_urls), options.model_dir, options.mode
    if mode != "model" and (model_dir or options.engine_args):
        raise BenchmarkError(
            f"--model-dir and --engine-arg are for --mode model (vLLM's in-process engine), not --mode {mode}",
            "Add --mode model, or serve the model with vLLM and give --model-url"
            if mode == "agent"
            else "Leave them out, or add --mode model",
        )
    if mode == "model" and model_dir is not None:
        if urls:
            raise BenchmarkError("--model-dir and --model-url both given", "Give one: a local model or its servers")
        from vesalius.eval.engine_predictor import EnginePredictor

        return EnginePredictor(
            model_dir, options.out / "engine.log", python=settings.vllm_python, engine_args=options.engine_args
        )
    if mode == "model":
        from vesalius.eval.server_predictor import ServerPredictor

        return ServerPredictor(urls, options.model_name)
    if mode == "agent":
        from vesalius.eval.predictors import AgentPredictor

        return AgentPredictor(settings, options.out / "agent", urls, options.model_name)
    if urls:
        raise BenchmarkError("--model-url is for --mode model or agent", "Leave it out in embedded mode")
    from vesalius.eval.predictors import EmbeddedPredictor

    return EmbeddedPredictor(settings, options.out / "agent")


def classification(labelled: list[tuple[EvalItem, Any]]) -> dict[str, Any]:
    """AUROC, calibration error, sensitivity and specificity at the model's own threshold, over the covered items
    (those a trained model read); `coverage` is their share. Binary sets only: the positive class is the one the
    model names."""
    import numpy as np

    from vesalius.vision.models.metrics import auroc, expected_calibration_error

    covered = [(i, r) for i, r in labelled if r.prediction.class_probabilities]
    out: dict[str, Any] = {"n": len(labelled), "covered": len(covered), "coverage": len(covered) / len(labelled)}
    if not covered:
        return out
    positive = next(iter(covered[0][1].prediction.class_probabilities))
    y = np.array([i.classes[i.label] == positive for i, _ in covered], dtype=int)
    p = np.array([r.prediction.class_probabilities[positive] for _, r in covered])
    called = np.array([r.prediction.text == positive for _, r in covered])
    out["positive_class"] = positive
    out["sensitivity"] = float(called[y == 1].mean()) if (y == 1).any() else None
    out["specificity"] = float((~called[y == 0]).mean()) if (y == 0).any() else None
    out["ece"] = float(expected_calibration_error(y, p))
    out["auroc"] = float(auroc(y, p)) if 0 < y.sum() < len(y) else None
    return out


def summarise_run(options: EvalOptions, items: list[EvalItem], skipped) -> dict[str, Any]:
    from vesalius.eval.scoring import summarise
    from vesalius.eval.scoring.types import ItemScore

    records = finished(options.out)
    done = [records[i.id] for i in items if i.id in records]
    scores = [ItemScore(**r.scores) for r in done]
    groups = {
        "question_type": [r.question_type or "-" for r in done],
        "organ_or_modality": [r.organ_or_modality or "-" for r in done],
        "language": [r.language for r in done],
        "answered_by": [r.prediction.source or "nothing" for r in done],
    }
    labelled = [(i, records[i.id]) for i in items if i.kind == "label" and i.id in records]
    summary = {
        "benchmark": options.benchmark,
        "mode": options.mode,
        "scoring": options.scoring,
        "split": options.split,
        **summarise(scores, groups),
        "answered": sum(r.prediction.text is not None for r in done),
        **({"classification": classification(labelled)} if labelled else {}),
        "complete": len(done) == len(items),
        "skipped": [{"item": s.ref, "reason": s.reason} for s in skipped],
        "manifest": run_json(options.out / MANIFEST, "run manifest", "Use an empty --out folder"),
    }
    (options.out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
