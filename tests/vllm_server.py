"""A real vLLM server (CPU build, its own virtual environment) serving a tiny random Gemma3 built here: one per
test session, shared by the agent's serving tests and the evaluation's model mode. Stopped by its process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("VESALIUS_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
STARTUP_S = 300


@dataclass(frozen=True)
class Server:
    url: str
    model: str
    model_dir: Path
    pid: int

    def token_id(self, token: str) -> int:
        added = json.loads((self.model_dir / "tokenizer.json").read_text())["added_tokens"]
        return next(t["id"] for t in added if t["content"] == token)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path_factory) -> Iterator[Server]:
    if not VLLM_PYTHON.exists():
        pytest.fail(f"vLLM's environment is missing ({VLLM_PYTHON}): run `bash scripts/install-vllm.sh` first")
    work = tmp_path_factory.mktemp("vllm")
    model_dir = work / "tiny-gemma3"
    subprocess.run([str(VLLM_PYTHON), str(REPO / "scripts" / "build_tiny_gemma3.py"), str(model_dir)], check=True)
    port = _free_port()
    log_path = work / "server.log"
    cmd = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--served-model-name", "tiny-gemma3", "--dtype", "bfloat16", "--max-model-len", "4096",
        "--max-num-seqs", "8", "--limit-mm-per-prompt", '{"image": 1}', "--enforce-eager",
        "--kv-cache-memory-bytes", "256M", "--host", "127.0.0.1", "--port", str(port),
        # Compact JSON under a schema: a random model otherwise pads with whitespace up to max_tokens.
        "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ]  # fmt: skip
    with open(log_path, "w") as log:
        # Its own session, so that the server and the engine processes it spawns stop together.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM not ready in {STARTUP_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield Server(url=f"{url}/v1", model="tiny-gemma3", model_dir=model_dir, pid=proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _group_gone(proc.pid), "processes of the vLLM server's group outlived it"


def _group_gone(pgid: int, wait_s: float = 30.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)  # vLLM's engine processes exit a moment after the API server
    return False
