"""`vesalius eval run --mode model|agent` through real vLLM (tiny Gemma3 on CPU): the model alone over servers
(several requests at once, round-robin with retries) or in vLLM's in-process engine (batches), and the whole agent
with its model."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from vesalius.eval.items import EvalItem
from vesalius.eval.model_prompt import INSTRUCTIONS, ImageParts, prompt
from vesalius.eval.server_predictor import ServerPredictor

pytestmark = pytest.mark.vllm


@pytest.fixture
def questions(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")
    lines = [
        {"id": "q1", "question": "Is this a CT scan?", "answer": "yes", "kind": "closed", "image": "ct.dcm"},
        {"id": "q2", "question": "What organ is shown?", "answer": "lung", "kind": "open", "image": "ct.dcm"},
        {
            "id": "q3",
            "question": "Which is a bone?",
            "answer": "B",
            "kind": "choice",
            "options": {"A": "liver", "B": "femur"},
        },
        # About a term, not the image: no image tool or VQA model answers it, so the model's line is the answer.
        {
            "id": "q4",
            "question": "What does the word effusion mean?",
            "answer": "no",
            "kind": "closed",
            "image": "ct.dcm",
        },
    ]
    path = folder / "q.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_prompt_is_fixed_text_per_kind():
    item = EvalItem(id="1", benchmark="x", question="Which?", answer="A", kind="choice", options={"A": "a", "B": "b"})
    assert prompt(item) == f"Which?\nA. a\nB. b\n{INSTRUCTIONS['choice']}"


def test_a_model_run_asks_every_question_over_every_server(cli, questions, tmp_path, vllm_server, free_port):
    out = tmp_path / "run"
    dead = f"http://127.0.0.1:{free_port}/v1"  # nothing listens: its turns are retried on the live server
    args = ["eval", "run", "jsonl", "--data", str(questions), "--mode", "model", "--quiet", "--out", str(out)]
    servers = ["--model-url", vllm_server.url, "--model-url", dead, "--model-name", vllm_server.model]
    p = cli(*args, *servers, "--concurrency", "4")
    assert p.returncode == 0, p.stderr
    records = {
        json.loads(line)["id"]: json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    }
    assert set(records) == {"q1", "q2", "q3", "q4"}
    for r in records.values():
        assert r["prediction"]["error"] is None and r["prediction"]["source"] == vllm_server.model
        assert r["prediction"]["tokens"]["prompt_tokens"] > r["prediction"]["tokens"]["completion_tokens"] > 0
        assert isinstance(r["scores"]["correct"], bool)  # a random model's words, scored like any answer
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["predictor"]["mode"] == "model" and manifest["predictor"]["prompt_sha256"]
    assert "model_urls" not in manifest  # another set of servers may continue the same run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and summary["mode"] == "model" and summary["complete"]


def test_a_server_that_never_answers_is_recorded_not_fatal(questions, free_port):
    predictor = ServerPredictor([f"http://127.0.0.1:{free_port}/v1"], "tiny-gemma3", retries=1, timeout_s=5)
    item = EvalItem(id="1", benchmark="x", question="Is it?", answer="yes", kind="closed")
    got = predictor.predict(item)
    assert got.text is None and "no answer after 2 tries" in got.error
    predictor.close()


def test_model_mode_without_a_server_is_one_line(cli, questions, tmp_path):
    p = cli("eval", "run", "jsonl", "--data", str(questions), "--mode", "model", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "--model-url" in p.stderr
    p = cli(
        "eval",
        "run",
        "jsonl",
        "--data",
        str(questions),
        "--mode",
        "model",
        "--model-url",
        "ftp://x",
        "--out",
        str(tmp_path / "p"),
    )
    assert p.returncode == 2 and "not an http(s) URL" in p.stderr


def test_each_image_is_encoded_once_within_bounds(tmp_path, monkeypatch):
    import vesalius.eval.model_prompt as mp

    ct, mr = tmp_path / "ct.dcm", tmp_path / "mr.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), ct)
    shutil.copy(get_testdata_file("MR_small.dcm"), mr)
    images = ImageParts()
    first = images.get(ct)
    assert images.get(ct) is first and first["image_url"]["url"].startswith("data:image/png;base64,")
    monkeypatch.setattr(mp, "IMAGE_CACHE_ENTRIES", 1)
    images.get(mr)
    assert len(images) == 1 and images.get(ct) is not first  # the older one was let go


def _records(out: Path) -> dict[str, dict]:
    return {json.loads(line)["id"]: json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()}


def _engine_env(cli_env):
    from vllm_server import VLLM_PYTHON

    return {**cli_env, "VESALIUS_VLLM_PYTHON": str(VLLM_PYTHON)}


def _workers_alive(model_dir: Path) -> list[str]:
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"engine_worker.py") for a in args) and str(model_dir).encode() in args:
            alive.append(cmdline.parent.name)
    return alive


@pytest.fixture
def engine_questions(questions):
    """The same question with and without the image, and one with a long context."""
    lines = [
        {"id": "a1", "question": "Is there an effusion?", "answer": "no", "kind": "closed", "image": "ct.dcm"},
        {"id": "a2", "question": "Is there an effusion?", "answer": "no", "kind": "closed"},
        {"id": "a3", "question": "What organ is shown?", "answer": "lung", "kind": "open", "image": "ct.dcm"},
        {"id": "a4", "question": "Is it?", "answer": "yes", "kind": "closed", "context": " ".join(["word"] * 300)},
    ]
    path = questions.with_name("engine.jsonl")
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_an_engine_run_asks_in_batches_and_a_finished_run_starts_no_engine(cli, cli_env, engine_questions, tmp_path,
                                                                           vllm_server):  # fmt: skip
    out = tmp_path / "run"
    args = ["eval", "run", "jsonl", "--data", str(engine_questions), "--mode", "model", "--quiet", "--out", str(out)]
    args += ["--model-dir", str(vllm_server.model_dir), "--concurrency", "3"]
    p = cli(*args, env=_engine_env(cli_env))
    assert p.returncode == 0, p.stderr
    records = _records(out)
    assert set(records) == {"a1", "a2", "a3", "a4"}
    for r in records.values():
        assert r["prediction"]["error"] is None and r["prediction"]["source"] == vllm_server.model_dir.name
        assert r["prediction"]["tokens"]["prompt_tokens"] > 0 and r["prediction"]["tokens"]["completion_tokens"] > 0
    # Three questions went to the engine in one call: they share their batch's latency; the fourth came alone.
    latencies = [records[q]["latency_s"] for q in ("a1", "a2", "a3", "a4")]
    assert latencies[0] == latencies[1] == latencies[2] != latencies[3]
    # The image became tokens: the same question with it has the model's image tokens more.
    image_tokens = json.loads((vllm_server.model_dir / "config.json").read_text())["mm_tokens_per_image"]
    with_image, without = (records[q]["prediction"]["tokens"]["prompt_tokens"] for q in ("a1", "a2"))
    assert with_image - without >= image_tokens
    predictor = json.loads((out / "manifest.json").read_text())["predictor"]
    assert predictor["engine"].startswith("vllm.LLM (vllm")
    weights = vllm_server.model_dir / "model.safetensors"
    assert predictor["model_files"]["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    log = (out / "engine.log").read_text()
    assert "starting vLLM's engine" in p.stderr and log
    assert _workers_alive(vllm_server.model_dir) == []  # the worker and its engine processes are gone
    again = cli(*args, env=_engine_env(cli_env))
    assert again.returncode == 0 and "starting vLLM's engine" not in again.stderr
    assert (out / "engine.log").read_text() == log


def test_a_question_the_engine_refuses_fails_alone(cli, cli_env, engine_questions, tmp_path, vllm_server):
    """A context too short for the long question: it is refused alone, the rest of its batch is answered."""
    out = tmp_path / "run"
    args = ["eval", "run", "jsonl", "--data", str(engine_questions), "--mode", "model", "--quiet", "--out", str(out)]
    args += ["--model-dir", str(vllm_server.model_dir), "--concurrency", "4", "--engine-arg", "max_model_len=128"]
    p = cli(*args, env=_engine_env(cli_env))
    assert p.returncode == 0, p.stderr
    records = _records(out)
    for q in ("a1", "a2", "a3"):
        assert records[q]["prediction"]["error"] is None and records[q]["prediction"]["text"] is not None
    refused = records["a4"]["prediction"]
    assert refused["text"] is None and refused["error"].startswith("the engine refused the question")
    assert records["a4"]["scores"]["correct"] is False
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine_args"] == {"max_model_len": 128}


def test_an_agent_run_scores_the_short_answer_of_tools_first_then_the_model(cli, cli_env, questions, tmp_path,
                                                                            vllm_server):  # fmt: skip
    """The whole agent with the model. The random model is held to the answer format by vLLM's structured output,
    so it writes a "Short answer:" line as a real model would."""
    out = tmp_path / "run"
    env = {**cli_env, "VESALIUS_VLM_EXTRA_BODY": json.dumps({"structured_outputs": {"regex": _FORMAT}})}
    args = ["eval", "run", "jsonl", "--data", str(questions), "--mode", "agent", "--quiet", "--out", str(out)]
    p = cli(*args, "--model-url", vllm_server.url, "--concurrency", "2", env=env)
    assert p.returncode == 0, p.stderr
    records = _records(out)
    # A DICOM study's kind answers "is this a CT?" even though the model also wrote a short answer.
    assert records["q1"]["prediction"]["source"] == "dicom_tags" and records["q1"]["prediction"]["text"] == "yes"
    assert "\n\nShort answer: " in records["q1"]["prediction"]["full_answer"]  # after the direct answer
    # Nothing here answers a question about a term: the model's own line is the short answer, and it is scored.
    q4 = records["q4"]["prediction"]
    assert q4["source"] == vllm_server.model and q4["text"] in ("yes", "no")
    assert f"\n\nShort answer: {q4['text']}" in q4["full_answer"]
    assert q4["tokens"]["prompt_tokens"] > q4["tokens"]["completion_tokens"] > 0
    assert records["q4"]["scores"]["correct"] == (q4["text"] == "no")
    # A text-only item is a question without a study: the model answers it from the sources, held to the format.
    q3 = records["q3"]["prediction"]
    assert q3.get("error") is None and q3["source"] == vllm_server.model and "Short answer: " in q3["full_answer"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["predictor"]["mode"] == "agent" and manifest["predictor"]["model"] == vllm_server.model
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "agent" and summary["by"]["answered_by"][vllm_server.model]["n"] >= 1


_FORMAT = r"Short answer: (yes|no)\n[a-z ]{1,40}"
