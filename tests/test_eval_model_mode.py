"""`vesalius eval run --mode model`: the model alone through real vLLM (tiny Gemma3 on CPU), several requests at
once, round-robin over servers with retries."""

import json
import shutil

import pytest
from pydicom.data import get_testdata_file

from vesalius.eval.items import EvalItem
from vesalius.eval.server_predictor import INSTRUCTIONS, ServerPredictor, prompt

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
        {"id": "q4", "question": "Is there an effusion?", "answer": "no", "kind": "closed", "image": "ct.dcm"},
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


def test_each_image_is_encoded_once_within_bounds(tmp_path, free_port, monkeypatch):
    import vesalius.eval.server_predictor as sp

    ct, mr = tmp_path / "ct.dcm", tmp_path / "mr.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), ct)
    shutil.copy(get_testdata_file("MR_small.dcm"), mr)
    predictor = ServerPredictor([f"http://127.0.0.1:{free_port}/v1"], "m")
    first = predictor._image(ct)
    assert predictor._image(ct) is first and first["image_url"]["url"].startswith("data:image/png;base64,")
    monkeypatch.setattr(sp, "IMAGE_CACHE_ENTRIES", 1)
    predictor._image(mr)
    assert len(predictor._images) == 1 and predictor._image(ct) is not first  # the older one was let go
    predictor.close()
