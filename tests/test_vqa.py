"""The embedded VQA model: trained reproducibly, read at run time exactly as in training, behind the modality gate,
and the short answer when nothing more direct answers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from test_training import _train

from vesalius.agent.service import Vesalius
from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.card import load_bundle
from vesalius.vision.models.store import WEIGHTS_DIR, ModelStore


def _vqa_rad(shared_data, n: int, closed: bool | None = None) -> list[dict]:
    rows = json.loads((shared_data / "vqa-rad" / "trainset.json").read_text())
    if closed is not None:
        rows = [r for r in rows if (r["answer_type"].strip() == "CLOSED") == closed]
    return rows[:: max(1, len(rows) // n)][:n]


def test_the_agent_reads_images_and_questions_as_the_model_was_trained(make_settings, shared_data):
    """On questions it was trained on, the shipped model mostly gives the trained answer through the whole agent:
    a mismatch between how training and the agent read an image or a question would break this."""
    rows = _vqa_rad(shared_data, 30)
    right = answered = applied = 0
    with Vesalius(make_settings()) as v:
        for r in rows:
            a = v.ask(r["question"], study=shared_data / "vqa-rad" / "images" / r["image_name"])
            vqa = next((t for t in a.tools if t.tool == "vqa_model"), None)
            if vqa is None:  # read as a question about a term ("what is ..."): knowledge only
                assert a.route.intent == "explain"
                continue
            if not vqa.applied:  # the gate did not accept the image: no model reads it
                assert vqa.reason.startswith("not for this image") and not a.study_kind.accepted
                continue
            applied += 1
            assert vqa.model is not None and vqa.probabilities
            if a.short_answer and a.short_answer.source == "vqa_model":
                answered += 1
                assert a.short_answer.kind == "vqa" and a.short_answer.probability >= vqa.probabilities[0].threshold
                right += a.short_answer.text == " ".join(r["answer"].lower().rstrip(".").split())
            elif not a.short_answer:
                assert vqa.summary.startswith("cannot tell")
    assert applied >= 20 and answered >= 15 and right / answered >= 0.75, (applied, answered, right)


def test_no_vqa_answer_on_an_image_no_model_was_trained_on(make_settings, tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)).save(noise)
    with Vesalius(make_settings()) as v:
        a = v.ask("Is there a fracture?", study=noise)
    vqa = next(t for t in a.tools if t.tool == "vqa_model")
    assert not vqa.applied and vqa.reason.startswith("not for this image") and a.short_answer is None


def test_a_vqa_model_trained_on_another_gate_is_refused(tmp_path):
    for f in WEIGHTS_DIR.glob("*"):
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    card = json.loads((tmp_path / "vqa.json").read_text())
    card["extra"]["backbone_version"] = "0" * 16
    (tmp_path / "vqa.json").write_text(json.dumps(card))
    with pytest.raises(ModelWeightsError, match="another modality_gate") as info:
        ModelStore(tmp_path).vqa()
    assert "vesalius train vqa" in info.value.one_line()


def test_the_shipped_card_reports_both_development_splits():
    card, tensors = load_bundle(WEIGHTS_DIR, "vqa")
    for split in ("dev_by_question", "dev_by_image"):
        for source in ("vqa-rad", "pathvqa"):
            m = card.metrics[split][source]
            assert m["n"] > 500 and {"overall", "closed", "open", "answered_share"} <= m.keys()
    # On new images the model knows less, and the card says so in numbers.
    assert card.metrics["dev_by_image"]["vqa-rad"]["overall"] < card.metrics["dev_by_question"]["vqa-rad"]["overall"]
    assert sum(t.numel() for t in tensors.values()) * 2 < 20 * 2**20  # float16 within the 20 MB budget


def test_vesalius_train_vqa_is_reproducible(shared_data, tmp_path, cli_env, train_here):
    runs = [
        _train("vqa", tmp_path / "a", shared_data, cli_env, "--epochs", "1"),
        train_here("vqa", tmp_path / "b", shared_data, "--epochs", "1"),
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    (card, a), (_, b) = (load_bundle(tmp_path / n, "vqa") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert card.recipe["epochs"] == 1 and (tmp_path / "a" / "vqa.md").exists()
    assert json.loads(runs[0].stdout)["metrics"] == card.metrics


def test_a_vqa_bundle_missing_its_tensors_is_a_clear_error(tmp_path):
    from safetensors.torch import load_file, save_file

    shutil.copy(WEIGHTS_DIR / "vqa.json", tmp_path / "vqa.json")
    tensors = load_file(str(WEIGHTS_DIR / "vqa.safetensors"))
    del tensors["feature_mean"]
    save_file(tensors, str(tmp_path / "vqa.safetensors"))
    with pytest.raises(ModelWeightsError, match="do not fit its card") as info:
        ModelStore(tmp_path).vqa()
    assert "vesalius train vqa" in info.value.one_line()
