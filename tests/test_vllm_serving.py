"""The agent against real vLLM (CPU build, own virtual environment) serving a tiny random Gemma3 built here.

Proves that the agent's prompt really carries the image as image tokens, that a follow-up prompt carries the
earlier turn, and that the answer path copes with a random model's text. The server is stopped by its PID.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pydicom
import pytest
from vllm_server import Server

from vesalius.agent.errors import AgentError
from vesalius.agent.service import Vesalius

pytestmark = pytest.mark.vllm


@pytest.fixture
def model_settings(make_settings, vllm_server):
    return make_settings(
        vlm_url=vllm_server.url,
        vlm_model=vllm_server.model,
        vlm_max_tokens=24,
        vlm_extra_body={"return_token_ids": True},
    )


def _detokenize(server: Server, ids: list[int]) -> str:
    """The prompt as vLLM saw it, in text (the BPE merges across words, so token subsequences are not comparable)."""
    body = {"model": server.model, "tokens": ids}
    return httpx.post(server.url.removesuffix("/v1") + "/detokenize", json=body, timeout=30).json()["prompt"]


def test_prompt_carries_the_image_as_image_tokens(model_settings, vllm_server, ct_path):
    with Vesalius(model_settings) as agent:
        answer = agent.ask("Is there a pleural effusion on this CT?", study=ct_path)
        reply = agent.thread(answer.thread_id)["model_reply"]
    ids = reply["prompt_token_ids"]
    soft = vllm_server.token_id("<image_soft_token>")
    assert ids.count(soft) == 16  # the tiny model's 64x64 image becomes 16 soft tokens
    start = ids.index(vllm_server.token_id("<start_of_image>"))
    assert ids[start + 1 : start + 17] == [soft] * 16 and ids[start + 17] == vllm_server.token_id("<end_of_image>")
    assert answer.model.used and answer.model.image_parts == 1
    assert answer.model.prompt_tokens == len(ids)  # vLLM counted exactly the prompt that carries the image
    # The question, tool results and cited passages travel in the same prompt as text.
    prompt = _detokenize(vllm_server, ids)
    assert "Question: <<<Is there a pleural effusion on this CT?>>>" in prompt and "Tool results:" in prompt
    assert f"[1] {answer.citations[0].name}" in prompt and answer.citations[0].passage in prompt
    assert "Shown: the image; window mediastinum" in prompt  # the window the question called for (effusion)
    header = pydicom.dcmread(ct_path, stop_before_pixels=True)
    for phi in (str(header.PatientName), header.PatientID, header.StudyInstanceUID, header.SOPInstanceUID):
        assert phi not in prompt  # what reaches the model server is de-identified


def test_random_model_text_is_cleaned_and_still_cited(model_settings, ct_path):
    with Vesalius(model_settings) as agent:
        answer = agent.ask("Describe this study", study=ct_path)
    assert answer.answer_source == "model" and answer.model.name == "tiny-gemma3"
    assert answer.answer and all(ch == "\n" or ch.isprintable() for ch in answer.answer)
    assert answer.model.completion_tokens and answer.model.completion_tokens <= 24
    if answer.model.completion_tokens == 24:  # a random model rarely stops by itself
        assert any("cut off at the token limit" in w for w in answer.warnings)
    assert "language model tiny-gemma3" in answer.uncertainty
    assert all(c.umls_cui or c.snomed_ct for c in answer.citations)


def test_follow_up_prompt_carries_the_earlier_turn(model_settings, ct_path, vllm_server):
    with Vesalius(model_settings) as agent:
        first = agent.ask("Is there any sign of pneumonia in the lungs?", study=ct_path)
        second = agent.ask("What does that mean?", thread_id=first.thread_id)
        ids = agent.thread(first.thread_id)["model_reply"]["prompt_token_ids"]
    assert second.turn == 2
    prompt = _detokenize(vllm_server, ids)
    assert "Is there any sign of pneumonia in the lungs?" in prompt  # the earlier turn, as a user turn
    assert prompt.index("Is there any sign of pneumonia") < prompt.index("Question: <<<What does that mean?>>>")
    assert ids.count(vllm_server.token_id("<image_soft_token>")) == 16  # the same study, still attached


def test_server_refusals_name_the_cause_and_the_fix(model_settings, ct_path):
    too_long = model_settings.model_copy(update={"vlm_max_tokens": 100_000, "require_model": True})
    with Vesalius(too_long) as agent, pytest.raises(AgentError) as info:
        agent.ask("Is there an effusion?", study=ct_path)
    assert "HTTP 400" in info.value.problem and "--max-model-len" in info.value.remedy
    wrong_model = model_settings.model_copy(update={"vlm_model": "no-such-model"})
    with Vesalius(wrong_model) as agent:
        answer = agent.ask("Is there an effusion?", study=ct_path)
    assert answer.answer_source == "tools_and_knowledge"
    assert any("HTTP 404" in w and "no-such-model" in w for w in answer.warnings), answer.warnings


def test_cli_uses_the_server_from_the_environment(cli_env, vllm_server, ct_path):
    env = cli_env | {
        "VESALIUS_VLM_URL": vllm_server.url,
        "VESALIUS_VLM_MAX_TOKENS": "16",
    }  # model name: from /v1/models
    vesalius = str(Path(sys.executable).with_name("vesalius"))
    p = subprocess.run(
        [vesalius, "ask", "--json", "--require-model", "--study", str(ct_path), "Is there an effusion?"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert answer["answer_source"] == "model" and answer["model"]["name"] == "tiny-gemma3"
    assert answer["model"]["image_parts"] == 1 and answer["model"]["prompt_tokens"] > 16


def test_at_a_terminal_the_models_text_shows_as_it_arrives(cli_env, vllm_server, ct_path):
    import os
    import pty

    env = cli_env | {"VESALIUS_VLM_URL": vllm_server.url, "VESALIUS_VLM_MAX_TOKENS": "16"}
    vesalius = str(Path(sys.executable).with_name("vesalius"))
    leader, follower = pty.openpty()  # stderr is a terminal; stdout a pipe
    p = subprocess.Popen(
        [vesalius, "ask", "--json", "--require-model", "--study", str(ct_path), "Is there an effusion?"],
        env=env, stdout=subprocess.PIPE, stderr=follower, text=True,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    out, _ = p.communicate(timeout=300)
    os.close(leader)
    assert p.returncode == 0
    text = json.loads(out)["answer"]
    assert "the model:" in shown.decode("utf-8", "replace")
    assert "the model:" not in out and text  # the progress line is on the terminal, never in the answer


def test_the_models_text_streams_as_it_is_generated(model_settings, ct_path):
    pieces: list[str] = []
    with Vesalius(model_settings) as agent:
        answer = agent.ask("Is there a pleural effusion on this CT?", study=ct_path, on_token=pieces.append)
        reply = agent.thread(answer.thread_id)["model_reply"]
    assert answer.model.used and len(pieces) > 1
    assert "".join(pieces) == reply["text"]  # every piece, in order, and nothing else
    assert answer.model.completion_tokens == model_settings.vlm_max_tokens or reply["finish_reason"] == "stop"


def test_the_server_streams_model_tokens_as_events(vllm_server, tmp_path, index_cache, ct_path):
    from http_server import Server, ask_streamed

    served = Server(
        tmp_path,
        index_cache,
        VESALIUS_VLM_URL=vllm_server.url,
        VESALIUS_VLM_MODEL=vllm_server.model,
        VESALIUS_VLM_MAX_TOKENS="24",
    )
    try:
        with served.client(token=None) as http:
            study = http.post("/api/studies", files=[("files", ("ct.dcm", Path(ct_path).read_bytes()))]).json()
            thread = http.post("/api/threads", json={"study_id": study["study_id"]}).json()["thread_id"]
            events = ask_streamed(http, thread, "Is there a pleural effusion?")
        names = [name for name, _ in events]
        assert names.count("token") > 1 and names[-1] == "answer"
        assert names.index("token") < names.index("answer")
        answer = events[-1][1]
        assert answer["model"]["used"] and "".join(d["text"] for n, d in events if n == "token")
    finally:
        served.stop()


def test_the_trace_keeps_the_prompt_without_images_question_or_phi(model_settings, ct_path):
    header = pydicom.dcmread(ct_path, stop_before_pixels=True)
    with Vesalius(model_settings) as agent:
        answer = agent.ask("Is there a pleural effusion on this CT?", study=ct_path)
        (trace,) = agent.traces(answer.thread_id)
    assert trace.model["used"] and trace.prompt
    flat = json.dumps(trace.prompt)
    assert '"image_url": "<image>"' in flat and "base64" not in flat
    assert "Is there a pleural effusion on this CT?" not in flat and "[the question of this turn]" in flat
    assert "Tool results:" in flat and [s.node for s in trace.steps].count("reason") == 1
    for phi in (str(header.PatientName), header.PatientID, header.StudyInstanceUID):
        assert phi not in flat


def test_the_injection_set_with_a_model_answering(model_settings, ct_path):
    from test_injection import assert_safe, injections

    with Vesalius(model_settings) as agent:
        for text in injections("question"):
            answer = agent.ask(f"Is there a pleural effusion? {text}", study=ct_path)
            assert answer.model.used
            assert_safe(answer, text)
            (trace,) = agent.traces(answer.thread_id)
            prompt = json.dumps(trace.prompt)
            assert "Question: <<<[the question of this turn]>>>" in prompt  # the question reaches the model fenced
