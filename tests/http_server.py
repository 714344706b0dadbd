"""`vesalius serve` as a real process on a free loopback port, for the HTTP, browser and PostgreSQL tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "test-token-0123456789abcdef"  # the servers these tests start require it


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, index_cache: Path, **env: str):
        self.root, self.port = root, _port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VESALIUS_")}
        root.mkdir(parents=True, exist_ok=True)
        self.env |= {
            "HOME": str(root / "home"),
            "VESALIUS_CACHE_DIR": str(index_cache),
            "VESALIUS_DATA_DIR": str(root / "data"),
            "VESALIUS_SERVE_PORT": str(self.port),
        } | env
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "vesalius"), "serve"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not start: {(root / 'server.log').read_text()[-2000:]}")

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    @property
    def store(self) -> Path:
        return self.root / "data" / "studies"


def ask_streamed(client: httpx.Client, thread: str, question: str) -> list[tuple[str, dict]]:
    """The server-sent events of one question, as (event, data) pairs in order."""
    with client.stream(
        "POST",
        f"/api/threads/{thread}/messages",
        json={"question": question},
        headers={"Accept": "text/event-stream"},
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        blocks = [b for b in stream.read().decode().split("\n\n") if b.strip()]
    return [
        (b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: "))) for b in blocks
    ]
