"""Run benchmark items through a predictor into a run folder that survives interruption.

    OUT/manifest.json       what the run is: code version, benchmark data hashes, predictor, scoring, options
    OUT/predictions.jsonl   one line per finished item, appended and flushed as each finishes

Rerunning with the same folder continues after the last finished item; a folder made for another run (another
data file, predictor, scoring or options) is refused rather than mixed. Ctrl-C stops cleanly: every finished item
stays, and the next run picks up from there. Items run on a bounded pool of threads, or in batches for a predictor
that takes them (an in-process engine), and each is independent: a predictor must not carry memory from one
question to the next (the agent's predictors open a fresh conversation each).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from vesalius import __version__
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem
from vesalius.eval.loaders._read import read_text

MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl"
# Fields of the manifest that may differ between the runs that fill one folder.
_PER_RUN = ("created", "resumed")


class Prediction(BaseModel):
    """What a predictor said about one item, before scoring."""

    text: str | None = Field(description="the short answer that is scored; null when nothing answered")
    probability: float | None = None
    source: str | None = Field(None, description="the tool or model that gave the short answer")
    class_probabilities: dict[str, float] = Field(
        default_factory=dict, description="classification items: calibrated probability of each class"
    )
    full_answer: str | None = None
    tokens: dict[str, int] = Field(default_factory=dict)
    error: str | None = Field(None, description="why the item could not be asked (scored as wrong)")


class Record(BaseModel):
    """One line of predictions.jsonl."""

    id: str
    question: str
    gold: str
    kind: str
    prediction: Prediction
    scores: dict[str, Any]
    latency_s: float
    question_type: str | None = None
    organ_or_modality: str | None = None
    language: str = "en"
    group: str | None = None


class Predictor(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """Everything about the predictor a reproduction needs (model id and file hashes, prompt template hash,
        settings), JSON-able."""
        ...

    def predict(self, item: EvalItem) -> Prediction: ...


@runtime_checkable
class BatchPredictor(Predictor, Protocol):
    """A predictor that answers several items in one call (an in-process engine), in their order."""

    def predict_batch(self, items: list[EvalItem]) -> list[Prediction]: ...


Scorer = Callable[[EvalItem, Prediction], dict[str, Any]]


@dataclass
class RunResult:
    out: Path
    done: int  # items in predictions.jsonl
    new: int  # of which this run added
    total: int
    interrupted: bool


def file_digest(path: Path) -> dict[str, Any]:
    """Path, size and SHA-256 of a data file; a reproduction checks it and then records it, so an unchanged file
    (same size and modification time) is hashed once per process."""
    st = path.stat()
    return dict(_digest(str(path.resolve()), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, Any], ...]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return (("path", path), ("bytes", size), ("sha256", digest.hexdigest()))


def code_digest() -> str:
    """The installed code by content: a changed line between two runs into one folder is another run, even when
    the version number did not move (a development checkout)."""
    import vesalius

    roots = [Path(vesalius.__file__).parent] + [
        Path(importlib.import_module(f"vesalius.{p}").__file__).parent for p in ("agent", "vision", "retrieval", "eval")
    ]
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def items_digest(items: Sequence[EvalItem]) -> str:
    return hashlib.sha256("\n".join(i.id for i in items).encode()).hexdigest()


def run_json(path: Path, what: str, remedy: str) -> dict[str, Any]:
    """A run folder's JSON file, read as a benchmark file is (a regular file, bounded, UTF-8): a run folder is
    input too, and may be somebody else's."""
    text = read_text(path, what)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BenchmarkError(f"the {what} {path} is not valid JSON ({exc})", remedy) from None
    if not isinstance(value, dict):
        raise BenchmarkError(f"the {what} {path} holds no JSON object", remedy)
    return value


def finished(out: Path) -> dict[str, Record]:
    """The records already written; a line cut short by a kill, or anything else that is not a record, is
    dropped (that item runs again)."""
    path = out / PREDICTIONS
    done: dict[str, Record] = {}
    if not path.exists():
        return done
    for line in read_text(path, "predictions file").splitlines():
        try:
            record = Record.model_validate_json(line)
        except ValueError:
            continue
        done[record.id] = record
    return done


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    path = out / MANIFEST
    if not path.exists():
        return
    before = run_json(path, "run manifest", "Use an empty --out folder")
    changed = sorted(k for k in {*before, *manifest} - set(_PER_RUN) if before.get(k) != manifest.get(k))
    if changed:
        raise BenchmarkError(
            f"{out} holds another run (its {', '.join(changed)} differ)",
            "Use a new --out folder, or the same options to continue that run",
        )


def run(
    items: Sequence[EvalItem],
    predictor: Predictor,
    scorer: Scorer,
    out: Path,
    manifest: dict[str, Any],
    *,
    concurrency: int = 1,
    progress: bool = True,
) -> RunResult:
    """Predict and score every item not yet in `out`, `concurrency` at a time."""
    if concurrency < 1:
        raise BenchmarkError(f"concurrency {concurrency} is below 1", "Give --concurrency 1 or more")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"cannot create {out} ({exc.strerror})", "Choose a writable --out folder") from exc
    manifest = {**manifest, "vesalius": __version__, "code_sha256": code_digest(), "items": len(items)}
    manifest["predictor"] = predictor.describe()
    manifest["item_ids_sha256"] = items_digest(items)
    _check_manifest(out, manifest)
    done = finished(out)
    manifest["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    manifest["resumed"] = bool(done)
    if not (out / MANIFEST).exists():
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    todo = [i for i in items if i.id not in done]
    bar = _bar(len(items), len(done), progress)
    lock = threading.Lock()
    new = 0
    interrupted = False
    with (out / PREDICTIONS).open("a", encoding="utf-8") as sink, ThreadPoolExecutor(concurrency) as pool:

        def one(item: EvalItem) -> Record:
            start = time.perf_counter()
            return _record(item, predictor.predict(item), scorer, time.perf_counter() - start)

        def write(record: Record) -> None:
            nonlocal new
            with lock:
                sink.write(record.model_dump_json() + "\n")
                sink.flush()
                os.fsync(sink.fileno())
                new += 1
                bar.update()

        pending: set[Future[Record]] = set()
        queue: Iterator[EvalItem] = iter(todo)
        try:
            if isinstance(predictor, BatchPredictor):
                # The engine takes `concurrency` questions in one call; each record's latency is its batch's.
                while batch := list(islice(queue, concurrency)):
                    start = time.perf_counter()
                    predictions = predictor.predict_batch(batch)
                    elapsed = time.perf_counter() - start
                    for item, prediction in zip(batch, predictions, strict=True):
                        write(_record(item, prediction, scorer, elapsed))
            for item in islice(queue, concurrency):
                pending.add(pool.submit(one, item))
            while pending:
                finished_now, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    write(future.result())
                    for item in islice(queue, 1):
                        pending.add(pool.submit(one, item))
        except KeyboardInterrupt:
            interrupted = True
            for future in pending:
                future.cancel()
            for future in pending:  # questions already being asked finish and are kept
                if not future.cancelled():
                    try:
                        write(future.result())
                    except Exception:  # noqa: BLE001, S110 - the interruption is what is being reported
                        pass
        finally:
            bar.close()
    return RunResult(out=out, done=len(done) + new, new=new, total=len(items), interrupted=interrupted)


def _record(item: EvalItem, prediction: Prediction, scorer: Scorer, latency_s: float) -> Record:
    return Record(
        id=item.id,
        question=item.question,
        gold=item.answer,
        kind=item.kind,
        prediction=prediction,
        scores=scorer(item, prediction),
        latency_s=round(latency_s, 4),
        question_type=item.question_type,
        organ_or_modality=item.organ_or_modality,
        language=item.language,
        group=item.group,
    )


def _bar(total: int, initial: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=" q", disable=not progress, file=sys.stderr, smoothing=0.1)
