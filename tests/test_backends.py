"""Model backends that degrade gracefully: the server client's retries, back-off and fail-over against real local
HTTP servers, and the transformers backend on the project's tiny random Gemma3 (built here, run on the CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vesalius.agent.deps import Deps
from vesalius.agent.errors import AgentError, ModelServerError
from vesalius.agent.local_model import LocalModel
from vesalius.agent.vlm_client import VlmClient, image_part

REPO = Path(__file__).resolve().parents[1]
REPLY = "No pleural effusion is seen."
MESSAGES = [{"role": "user", "content": "Is there a pleural effusion?"}]


class FakeServer:
    """An OpenAI-compatible chat server that fails its first `fail_first` requests with `status`, then
    answers (streamed when asked: one chunk per word); with `break_stream`, a stream stops after its first word
    without ending the HTTP body, as a server that dies mid-answer does."""

    def __init__(
        self,
        fail_first: int = 0,
        status: int = 503,
        retry_after: str | None = None,
        break_stream: bool = False,
        model: str = "fake-model",
    ):
        self.fail_first, self.status, self.retry_after = fail_first, status, retry_after
        self.break_stream, self.model = break_stream, model
        self.seen: list[str] = []  # "GET /v1/models", "POST /v1/chat/completions", in order
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # type: ignore[attr-defined]  # clients may keep connections open
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def chats(self) -> int:
        return self.seen.count("POST /v1/chat/completions")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked streams, and keep-alive as real servers do

            def log_message(self, *args: Any) -> None:
                pass

            def _failed(self) -> bool:
                with server.lock:
                    server.seen.append(f"{self.command} {self.path}")
                    if len(server.seen) > server.fail_first:
                        return False
                headers = {"Retry-After": server.retry_after} if server.retry_after else {}
                self._json(server.status, {"error": {"message": f"busy ({server.status})"}}, headers)
                return True

            def do_GET(self) -> None:
                if not self._failed():
                    self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self._failed():
                    pass
                elif body.get("stream"):
                    self._stream(body)
                else:
                    usage = {"prompt_tokens": 7, "completion_tokens": 6}
                    message = {"role": "assistant", "content": REPLY}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    self._json(200, {"model": body["model"], "choices": [choice], "usage": usage})

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                words = [w + " " for w in REPLY.split(" ")[:-1]] + [REPLY.split(" ")[-1]]
                for i, word in enumerate(words):
                    choice = {"index": 0, "delta": {"content": word}, "finish_reason": None}
                    self._chunk(f"data: {json.dumps({'model': body['model'], 'choices': [choice]})}\n\n")
                    if server.break_stream:
                        self.wfile.flush()
                        self.close_connection = True
                        return  # no final chunk: the client sees an incomplete body
                final = {"model": body["model"], "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 6}}
                done = {"index": 0, "delta": {}, "finish_reason": "stop"}
                self._chunk(f"data: {json.dumps({'model': body['model'], 'choices': [done]})}\n\n")
                self._chunk(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

            def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[FakeServer] = []

    def start(**kwargs: Any) -> FakeServer:
        started.append(FakeServer(**kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client(make_settings):
    """`client(url, **settings)`: the client `Deps` makes from those settings (back-off kept short)."""
    made: list[Deps] = []

    def make(url: str, **overrides: Any) -> VlmClient:
        deps = Deps.from_settings(make_settings(vlm_url=url, **({"vlm_backoff_s": 0.01} | overrides)))
        made.append(deps)
        assert isinstance(deps.vlm, VlmClient)
        return deps.vlm

    yield make
    for deps in made:
        deps.close()


# ------------------------------------------------------------------------------------- the server client


def test_a_busy_server_is_retried_until_it_answers(serve, client):
    server = serve(fail_first=2)
    reply = client(server.url, vlm_model="m", vlm_retries=2).chat(MESSAGES, max_tokens=16)
    assert reply.text == REPLY and reply.model == "m" and reply.completion_tokens == 6
    assert server.chats() == 3


def test_giving_up_says_how_many_attempts_were_made(serve, client):
    server = serve(fail_first=100)
    with pytest.raises(ModelServerError, match=r"answered HTTP 503: busy \(503\) \(2 attempts\)") as caught:
        client(server.url, vlm_model="m", vlm_retries=1).chat(MESSAGES, max_tokens=16)
    assert server.chats() == 2
    assert "\n" not in caught.value.one_line() and server.url in caught.value.problem


def test_back_off_grows_and_retry_after_is_honoured(serve, client):
    server = serve(fail_first=2, status=429, retry_after="0.4")
    start = time.monotonic()
    assert client(server.url, vlm_model="m", vlm_backoff_s=0).chat(MESSAGES, max_tokens=16).text == REPLY
    assert time.monotonic() - start >= 0.8 and server.chats() == 3  # two pauses of the server's 0.4 s
    slow = client(server.url, vlm_backoff_s=2)
    pauses = [slow._pause(n, []) for n in range(4)]
    assert all(1.0 * 2**n <= p <= 2.0 * 2**n for n, p in enumerate(pauses))  # doubling, jittered down to half
    assert slow._pause(0, [1000.0]) == 30.0  # a server's Retry-After is capped


def test_a_refused_request_is_not_retried_nor_sent_elsewhere(serve, client):
    bad, spare = serve(fail_first=100, status=400), serve()
    with pytest.raises(ModelServerError, match="answered HTTP 400: busy"):
        client(f"{bad.url},{spare.url}", vlm_model="m").chat(MESSAGES, max_tokens=16)
    assert bad.chats() == 1 and spare.seen == []


def test_fails_over_to_the_next_url_and_stays_with_it(serve, client, free_port):
    dead, busy, good = f"http://127.0.0.1:{free_port}/v1", serve(fail_first=100), serve()
    vlm = client(f"{dead},{busy.url},{good.url}", vlm_retries=0)
    assert vlm.model == "fake-model" and good.seen == ["GET /v1/models"]  # the model list fails over too
    assert vlm.base == good.url
    for _ in range(3):
        assert vlm.chat(MESSAGES, max_tokens=16).text == REPLY
    assert good.chats() == 3 and busy.chats() == 0  # once one answered, it is the one asked


def test_every_url_tried_is_named_when_all_fail(serve, client, free_port):
    dead, busy = f"http://127.0.0.1:{free_port}/v1", serve(fail_first=100)
    with pytest.raises(ModelServerError) as caught:
        client(f"{dead}, {busy.url}", vlm_model="m", vlm_retries=1).chat(MESSAGES, max_tokens=16)
    problem = caught.value.problem
    assert f"cannot reach the model server at {dead} (ConnectError)" in problem
    assert f"the model server at {busy.url} answered HTTP 503" in problem and problem.endswith("(4 attempts)")
    assert busy.chats() == 2


def test_threads_share_the_server_that_works(serve, client, free_port):
    good = serve()
    vlm = client(f"http://127.0.0.1:{free_port}/v1,{good.url}", vlm_model="m", vlm_retries=0)
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(vlm.chat(MESSAGES, 16).text)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert replies == [REPLY] * 8 and good.chats() == 8 and vlm.base == good.url


def test_a_stream_is_retried_before_its_first_token(serve, client):
    server = serve(fail_first=1)
    pieces: list[str] = []
    reply = client(server.url, vlm_model="m").chat(MESSAGES, max_tokens=16, on_token=pieces.append)
    assert "".join(pieces) == reply.text == REPLY and reply.finish_reason == "stop" and reply.prompt_tokens == 7
    assert server.chats() == 2


def test_a_stream_that_breaks_after_a_token_is_not_repeated(serve, client):
    server, spare = serve(break_stream=True), serve()
    pieces: list[str] = []
    with pytest.raises(ModelServerError, match="cannot reach the model server"):
        client(f"{server.url},{spare.url}", vlm_model="m").chat(MESSAGES, max_tokens=16, on_token=pieces.append)
    assert pieces == ["No "] and server.chats() == 1 and spare.seen == []


# ------------------------------------------------------------------------------------------------ settings


def test_settings_take_several_urls_and_check_each(make_settings):
    s = make_settings(vlm_url="http://a:1/v1 , https://b")
    assert s.vlm_url == "http://a:1/v1,https://b" and s.vlm_retries == 2 and s.vlm_backoff_s == 0.5
    with pytest.raises(AgentError, match="invalid setting 'vlm_url'.*'ftp://b'"):
        make_settings(vlm_url="http://a:1/v1,ftp://b")
    with pytest.raises(AgentError, match="invalid setting 'vlm_retries'"):
        make_settings(vlm_retries=11)
    with pytest.raises(AgentError, match="invalid setting 'vlm_model_dir'.*needs the folder"):
        make_settings(vlm_backend="transformers")


def test_deps_choose_the_backend_and_import_no_torch(make_settings, tmp_path):
    assert Deps(make_settings()).vlm is None
    assert isinstance(Deps(make_settings(vlm_url="http://a:1")).vlm, VlmClient)
    local = Deps(make_settings(vlm_backend="transformers", vlm_model_dir=tmp_path / "medgemma")).vlm
    assert isinstance(local, LocalModel) and local.model == "medgemma"
    code = "import sys, vesalius.agent.deps, vesalius.agent.local_model; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert run.stdout.strip() == "False"


# ----------------------------------------------------------------------------------- the transformers backend


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backends") / "tiny-gemma3"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_tiny_gemma3.py"), str(out)], check=True, capture_output=True
    )
    return out


@pytest.fixture(scope="session")
def local(tiny_gemma3) -> Iterator[LocalModel]:
    model = LocalModel(tiny_gemma3)
    yield model
    model.close()


def _image_question(text: str = "Is there a pleural effusion?") -> list[dict[str, Any]]:
    image = Image.new("L", (120, 90), 100)
    return [
        {"role": "system", "content": "You are a careful radiologist."},
        {"role": "user", "content": [image_part(image), {"type": "text", "text": text}]},
    ]


def test_local_model_answers_an_image_question(local):
    reply = local.chat(_image_question(), max_tokens=12)
    assert isinstance(reply.text, str) and reply.text and reply.model == "tiny-gemma3"
    assert reply.prompt_tokens is not None and reply.prompt_tokens > 16  # the image alone is 16 soft tokens
    assert reply.completion_tokens is not None and 1 <= reply.completion_tokens <= 12
    pieces: list[str] = []
    streamed = local.chat(_image_question(), max_tokens=12, on_token=pieces.append)
    assert "".join(pieces) == streamed.text == reply.text and len(pieces) > 1  # greedy: the same text both ways
    assert streamed.completion_tokens == reply.completion_tokens


def test_local_model_stops_at_the_token_limit(local):
    reply = local.chat(_image_question(), max_tokens=3)
    assert reply.finish_reason == "length" and reply.completion_tokens == 3


def test_local_model_refuses_an_image_by_address(local):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]
    with pytest.raises(ModelServerError, match="only as base64 data: URLs"):
        local.chat(messages, max_tokens=3)


def test_agent_answers_with_the_local_model(make_settings, tiny_gemma3, ct_path):
    from vesalius.agent.service import Vesalius

    settings = make_settings(vlm_backend="transformers", vlm_model_dir=tiny_gemma3, vlm_max_tokens=24)
    with Vesalius(settings) as agent:
        answer = agent.ask("Is there a pleural effusion?", study=ct_path)
    assert answer.answer_source == "model" and answer.model.name == "tiny-gemma3"
    assert answer.model.image_parts == 1 and answer.model.completion_tokens and answer.model.completion_tokens <= 24


def test_local_model_answers_threads_one_at_a_time(local):
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(local.chat(_image_question(), 8).text)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 3 and len(set(replies)) == 1


def test_unusable_model_folders_say_what_is_wrong(tmp_path, tiny_gemma3):
    empty = tmp_path / "empty"
    empty.mkdir()
    text_only = tmp_path / "text-only"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_gemma3, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    cases = {
        tmp_path / "missing": "does not exist",
        empty: r"is not a model folder \(it has no config.json\)",
        text_only: r"\(LlamaForCausalLM\) cannot take images",
        no_weights: "cannot load the model in .*no-weights",
    }
    for folder, expected in cases.items():
        with pytest.raises(ModelServerError, match=expected) as caught:
            LocalModel(folder).chat(MESSAGES, max_tokens=3)
        assert "\n" not in caught.value.one_line()


def test_the_cli_says_a_missing_model_folder_in_one_line(cli, cli_env, ct_path, tmp_path):
    env = cli_env | {"VESALIUS_VLM_BACKEND": "transformers", "VESALIUS_VLM_MODEL_DIR": str(tmp_path / "medgemma")}
    p = cli("ask", "--require-model", "--study", ct_path, "Is there an effusion?", env=env)
    assert p.returncode == 2 and p.stderr.startswith("error: the model folder") and "does not exist" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = cli("ask", "--study", ct_path, "Is there an effusion?", env=env)  # without --require-model: a warning
    assert p.returncode == 0 and "does not exist; answered from the tools" in " ".join(p.stdout.split())
    p = cli("ask", "--study", ct_path, "Is there an effusion?", env=env | {"VESALIUS_VLM_MODEL_DIR": ""})
    assert p.returncode == 2 and "invalid setting 'vlm_model_dir'" in p.stderr and len(p.stderr.splitlines()) == 1
