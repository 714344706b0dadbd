"""`vesalius eval run` end to end: the embedded agent on a questions_file written here, scored, resumable."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

VESALIUS = str(Path(sys.executable).with_name("vesalius"))
# (question, gold, kind): the two modality questions per study are ones the agent answers from the DICOM tags; the
# last, about a term rather than the image, is one nothing here answers, so it must be scored wrong, not guessed.
QUESTIONS = [
    ("What modality is this?", "{modality}", "open"),
    ("Is this a CT scan?", "{is_ct}", "closed"),
    ("What does the word atelectasis mean?", "no", "closed"),
]
STUDIES = {"ct.dcm": ("CT_small.dcm", "CT", "yes"), "mr.dcm": ("MR_small.dcm", "MRI", "no")}


@pytest.fixture
def questions_file(tmp_path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    lines = []
    for name, (source, modality, is_ct) in STUDIES.items():
        shutil.copy(get_testdata_file(source), folder / name)
        for n, (question, gold, kind) in enumerate(QUESTIONS):
            answer = gold.format(modality=modality, is_ct=is_ct)
            lines.append({"id": f"{name}-{n}", "question": question, "answer": answer, "kind": kind, "image": name})
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    s.pop("manifest")
    return s


def test_a_run_scores_the_short_answers_and_writes_its_contract(cli, questions_file, tmp_path):
    out = tmp_path / "run"
    p = cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "| overall | 6 |" in p.stdout
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 6 and {r["id"] for r in records} == {f"{s}-{n}" for s in STUDIES for n in range(3)}
    by_id = {r["id"]: r for r in records}
    assert by_id["ct.dcm-0"]["prediction"]["text"] == "CT" and by_id["ct.dcm-0"]["scores"]["correct"]
    assert by_id["mr.dcm-1"]["prediction"]["text"] == "no" and by_id["mr.dcm-1"]["scores"]["correct"]
    unanswered = by_id["ct.dcm-2"]
    assert unanswered["prediction"]["text"] is None and not unanswered["scores"]["correct"]  # never a guess
    summary = json.loads((out / "summary.json").read_text())
    correct = [r["scores"]["correct"] for r in records]
    assert summary["n"] == 6 and summary["answered"] == sum(r["prediction"]["text"] is not None for r in records)
    assert summary["overall"]["accuracy"] == pytest.approx(sum(correct) / len(correct))
    assert summary["closed"]["n"] == 4 and summary["open"]["n"] == 2
    lo, hi = summary["overall"]["accuracy_ci"]
    assert lo <= summary["overall"]["accuracy"] <= hi
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data_file"]["sha256"] and manifest["predictor"]["weights"] and manifest["scoring"] == "vesalius"
    assert cli("eval", "report", str(out)).returncode == 0
    text = (out / "report.md").read_text()
    assert "| overall | 6 |" in text and "## By answered by" in text
    assert (out / "plots" / "accuracy_by_answered_by.png").read_bytes()[:4] == b"\x89PNG"
    assert cli("eval", "report", str(tmp_path / "nothing")).returncode == 2
    # Each question in a fresh conversation: as many threads as questions, none with a second turn.
    import sqlite3

    with sqlite3.connect(out / "agent" / "threads.sqlite") as db:
        threads = db.execute("select count(distinct thread_id) from checkpoints").fetchone()[0]
    assert threads == 6


def test_an_interrupted_run_resumes_to_the_same_summary(cli, cli_env, questions_file, tmp_path):
    many = questions_file.with_name("many.jsonl")
    lines = questions_file.read_text().splitlines()
    many.write_text(
        "".join(
            json.dumps({**json.loads(line), "id": f"{k}-{json.loads(line)['id']}"}) + "\n"
            for k in range(5)
            for line in lines
        )
    )
    out, whole = tmp_path / "interrupted", tmp_path / "whole"
    args = ["eval", "run", "jsonl", "--data", str(many), "--quiet"]
    proc = subprocess.Popen(
        [VESALIUS, *args, "--out", str(out)], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = (out / "predictions.jsonl").read_text().count("\n") if (out / "predictions.jsonl").exists() else 0
        if done >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    kept = (out / "predictions.jsonl").read_text().count("\n")
    assert proc.returncode == 130 and "run the same command again to continue" in err, err
    assert 3 <= kept < 30
    assert cli(*args, "--out", str(out)).returncode == 0
    assert cli(*args, "--out", str(whole)).returncode == 0
    assert _summary(out) == _summary(whole)
    assert (out / "predictions.jsonl").read_text().count("\n") == 30  # nothing asked twice


def test_bad_runs_are_one_line(cli, questions_file, tmp_path):
    out = tmp_path / "run"
    assert (
        cli(
            "eval", "run", "jsonl", "--data", str(questions_file), "--out", str(out), "--quiet", "--limit", "2"
        ).returncode
        == 0
    )
    other = cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(out), "--scoring", "medevalkit")
    assert other.returncode == 2 and "holds another run" in other.stderr and "scoring" in other.stderr
    unknown = cli("eval", "run", "nope", "--data", str(questions_file), "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "vqa-rad" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    missing = cli("eval", "run", "jsonl", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and "none.jsonl" in missing.stderr
    zero = cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(tmp_path / "z"), "--limit", "0")
    assert zero.returncode == 2 and "--limit 0" in zero.stderr


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        (["--mode", "model", "--model-dir", "{tmp}/nowhere"], {}, "is not a folder"),
        (["--mode", "model", "--model-dir", "{tmp}/empty"], {}, "holds no config.json"),
        (
            ["--mode", "model", "--model-dir", "{tmp}/model"],
            {"VESALIUS_VLLM_PYTHON": "{tmp}/model"},
            "not an executable",
        ),
        # This environment has no vLLM (it lives in its own): its python is refused with what to do instead.
        (["--mode", "model", "--model-dir", "{tmp}/model"], {"VESALIUS_VLLM_PYTHON": sys.executable}, "no vLLM"),
        (["--mode", "model", "--model-dir", "{tmp}/model", "--model-url", "http://127.0.0.1:9/v1"], {}, "both given"),
        (["--mode", "agent", "--model-dir", "{tmp}/model"], {}, "serve the model with vLLM"),
        (["--mode", "agent"], {}, "agent mode needs a model server"),
        (["--mode", "agent", "--model-url", "file:///etc/passwd"], {}, "not an http(s) URL"),
        (["--mode", "agent", "--model-url", "http://127.0.0.1:{port}/v1"], {}, "cannot list the models"),
        (["--mode", "model", "--model-dir", "{tmp}/model", "--engine-arg", "oops"], {}, "is not KEY=VALUE"),
        (["--mode", "model", "--model-dir", "{tmp}/model", "--engine-arg", "model=x"], {}, "the model is --model-dir"),
        (["--engine-arg", "seed=1"], {}, "are for --mode model"),
    ],
)
def test_bad_model_options_are_one_line(cli, cli_env, questions_file, tmp_path, free_port, extra, env, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    fill = lambda text: text.format(tmp=tmp_path, port=free_port)
    out = tmp_path / "run"
    args = ["eval", "run", "jsonl", "--data", str(questions_file), "--out", str(out), *map(fill, extra)]
    p = cli(*args, env={**cli_env, **{k: fill(v) for k, v in env.items()}})
    assert p.returncode == 2 and expected in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) <= 3 and "Traceback" not in p.stderr
    assert not (out / "predictions.jsonl").exists()


def test_the_vqa_rad_dev_split_never_shares_an_image_with_train(shared_data):
    from vesalius.eval.evaluate import choose
    from vesalius.eval.loaders import load_benchmark

    loaded = load_benchmark("vqa-rad", shared_data / "vqa-rad" / "trainset.json")
    dev, train = choose(loaded.items, "dev", None), choose(loaded.items, "train", None)
    assert len(dev) + len(train) == len(loaded.items)
    assert not {i.image for i in dev} & {i.image for i in train}
    assert os.path.commonpath([i.image for i in dev]) == str(shared_data / "vqa-rad" / "images")


def test_a_run_is_reproduced_from_its_manifest(cli, questions_file, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(first), "--quiet").returncode == 0
    p = cli("eval", "run", "--from-manifest", str(first / "manifest.json"), "--out", str(again), "--quiet")
    assert p.returncode == 0, p.stderr
    assert _summary(again) == _summary(first)
    assert "note:" not in p.stderr  # the same code and weights: nothing to flag
    manifest = json.loads((first / "manifest.json").read_text())
    weights = manifest["predictor"]["weights"]
    weights[next(iter(weights))] = "0" * 16  # as if the original ran with other weights
    (first / "manifest.json").write_text(json.dumps(manifest))
    flagged = cli(
        "eval", "run", "--from-manifest", str(first / "manifest.json"), "--out", str(tmp_path / "x"), "--quiet"
    )
    assert flagged.returncode == 0 and "another predictor.weights than the original" in flagged.stderr
    same = cli("eval", "run", "--from-manifest", str(first / "manifest.json"), "--out", str(first))
    assert same.returncode == 2 and "a new folder" in same.stderr
    questions_file.write_text(questions_file.read_text().replace('"CT"', '"MRI"', 1))
    changed = cli("eval", "run", "--from-manifest", str(first / "manifest.json"), "--out", str(tmp_path / "third"))
    assert changed.returncode == 2 and "is not the file the run read" in changed.stderr
    assert cli("eval", "run", "--out", str(tmp_path / "fourth")).returncode == 2  # neither a benchmark nor a manifest


def test_two_runs_are_compared_item_by_item(cli, questions_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(a), "--quiet").returncode == 0
    shutil.copytree(a, b)
    records = [json.loads(line) for line in (b / "predictions.jsonl").read_text().splitlines()]
    right = [r for r in records if r["kind"] == "closed" and r["scores"]["correct"]]
    for r in right[:2]:  # run B gets two closed questions wrong that run A got right
        r["scores"]["correct"] = False
    (b / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    p = cli("eval", "compare", str(a), str(b), "--json")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    flipped = min(2, len(right))
    assert c["n"] == 6 and c["overall"]["difference"] == pytest.approx(flipped / 6)
    assert c["closed"]["mcnemar"]["only_a"] == flipped and c["closed"]["mcnemar"]["only_b"] == 0
    assert c["closed"]["mcnemar"]["p_value"] == pytest.approx(min(1.0, 2 * 0.5**flipped))
    assert "| overall | 6 |" in cli("eval", "compare", str(a), str(b)).stdout
    other = tmp_path / "other"
    cli(
        "eval",
        "run",
        "jsonl",
        "--data",
        str(questions_file),
        "--out",
        str(other),
        "--quiet",
        "--scoring",
        "multimedeval",
    )
    mixed = cli("eval", "compare", str(a), str(other))
    assert mixed.returncode == 2 and "differ in scoring" in mixed.stderr


def test_a_class_folder_set_is_scored_as_classification(cli, shared_data, tmp_path):
    films = tmp_path / "films"
    for label in ("NORMAL", "PNEUMONIA"):
        (films / label).mkdir(parents=True)
        for source in sorted((shared_data / "kermany-cxr" / "train" / label).iterdir())[:4]:
            shutil.copy(source, films / label / source.name)
    out = tmp_path / "run"
    p = cli("eval", "run", "class-folders", "--data", str(films), "--out", str(out), "--quiet", "--json")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)["classification"]
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    covered = [r for r in records if r["prediction"]["class_probabilities"]]
    assert c["n"] == 8 and c["covered"] == len(covered) and c["coverage"] == len(covered) / 8
    assert covered, "the pneumonia model reads Kermany films"
    assert c["positive_class"] == "PNEUMONIA" and covered[0]["prediction"]["source"] == "pneumonia_classifier"
    sick = [r for r in covered if r["gold"] == "PNEUMONIA"]
    if sick:
        assert c["sensitivity"] == sum(r["prediction"]["text"] == "PNEUMONIA" for r in sick) / len(sick)
    assert c["auroc"] is None or 0 <= c["auroc"] <= 1
    assert 0 <= c["ece"] <= 1
    report = cli("eval", "report", str(out))
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    assert "classification (PNEUMONIA positive)" in text and "--from-manifest" in text
    if c["auroc"] is not None:  # both classes among the films a model read: a curve and a reliability diagram
        for name in ("roc.png", "calibration.png"):
            assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"(plots/{name})" in text


def test_hostile_run_folders_are_one_line(cli, questions_file, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert cli("eval", "run", "jsonl", "--data", str(questions_file), "--out", str(run), "--quiet").returncode == 0
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would block for ever
    bad = {"fifo": fifo, "binary": tmp_path / "binary.json", "list": tmp_path / "list.json"}
    bad["binary"].write_bytes(b'{"benchmark": "\xff\xfe"}')
    bad["list"].write_text("[1, 2]")
    said = {"fifo": "not a regular file", "binary": "not UTF-8", "list": "holds no JSON object"}
    for name, path in bad.items():
        p = cli("eval", "run", "--from-manifest", str(path), "--out", str(tmp_path / f"o-{name}"))
        assert p.returncode == 2 and said[name] in p.stderr and len(p.stderr.splitlines()) == 1, (name, p.stderr)
    (tmp_path / "folder" / "summary.json").mkdir(parents=True)
    assert cli("eval", "report", str(tmp_path / "folder")).returncode == 2
    # Lines that are not records (a cut line, garbage) are dropped, not fatal; a file past the limit is refused.
    with (run / "predictions.jsonl").open("a") as f:
        f.write('{"id": "half\nnot json at all\n')
    assert cli("eval", "compare", str(run), str(run)).returncode == 0
    monkeypatch.setattr("vesalius.eval.loaders._read.MAX_FILE_BYTES", 100)
    p = cli("eval", "compare", str(run), str(run))
    assert p.returncode == 2 and "over the" in p.stderr


def test_a_hostile_model_folder_is_bounded(tmp_path, monkeypatch):
    """--model-dir is hashed file by file: a link back up, a FIFO and a folder of too many files neither hang nor
    recurse, and an empty folder is one line."""
    import vesalius.eval.engine_predictor as ep
    from vesalius.eval.errors import BenchmarkError

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "up").symlink_to("..")
    os.mkfifo(model / "pipe")
    assert list(ep.model_files(model)) == ["config.json"]
    monkeypatch.setattr(ep, "_MAX_MODEL_FILES", 3)
    for n in range(4):
        (model / f"shard{n}.bin").write_bytes(b"x")
    with pytest.raises(BenchmarkError, match="holds 5 files"):
        ep.model_files(model)
    with pytest.raises(BenchmarkError, match="holds no config.json"):
        ep.model_files(tmp_path / "model" / "..")  # the parent: a folder, but not a model's
