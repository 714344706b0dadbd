"""The population check: a classifier says when an image is unlike the images it was trained on, and then raises no
alarm and gives no yes or no from its probability (an adult chest film for a model of children's films)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from dicom_factory import write_image
from PIL import Image

from vesalius.agent.direct import direct_answer
from vesalius.agent.nodes.compose import model_alerts
from vesalius.agent.short_answer import short_answer
from vesalius.vision import load_study
from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.card import WEIGHTS_DIR, load_bundle, save_bundle
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.population import QUANTILE, cross_fitted_outside, fit_population
from vesalius.vision.models.probability import Probability
from vesalius.vision.models.store import ModelStore
from vesalius.vision.tools import ToolRegistry
from vesalius.vision.tools.base import ToolResult
from vesalius.vision.train.datasets import kermany_files
from vesalius.vision.train.shift import LABELS

ASKED = "Is there pneumonia?"
FILM = StudyKind(kind="chest_xray_frontal", source="image_classifier", probability=0.97, reason="image gate")


def test_the_limit_is_what_held_out_films_stay_within_and_the_other_population_exceeds_it():
    rng = np.random.default_rng(0)
    train, val, fresh = (rng.normal(0, 1, (n, 12)) for n in (3000, 1000, 2000))
    other = rng.normal(0, 1, (60, 12))
    other[:, :3] += 2.5  # another population differs in a few statistics, not in all
    check = fit_population(train, other, val)
    assert np.mean(check.outside(val)) == pytest.approx(1 - QUANTILE, abs=0.002)
    assert np.mean(check.outside(fresh)) < 0.03
    outside, checks = cross_fitted_outside(train, other, val)
    assert len(checks) == 5 and outside.mean() > 0.8  # films of the other kind that no check was fitted on
    unseen = rng.normal(0, 1, (500, 12))
    unseen[:, :3] += 2.5
    assert np.mean(check.outside(unseen)) > 0.8


def test_a_bundle_keeps_the_check_in_full_precision(tmp_path):
    card, tensors = load_bundle(WEIGHTS_DIR, "pneumonia")
    save_bundle(tmp_path, card, tensors)
    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "pneumonia.safetensors"))
    assert raw["population.weights"].dtype == torch.float32 and raw["net.stem.0.weight"].dtype == torch.float16


@pytest.mark.parametrize(
    "damage",
    [
        lambda t, c: t.pop("population.weights"),
        lambda t, c: t.__setitem__("population.mean", torch.zeros(7)),
        lambda t, c: t.__setitem__("population.weights", torch.full_like(t["population.weights"], float("nan"))),
        lambda t, c: t.__setitem__("population.scale", torch.zeros_like(t["population.scale"])),
        lambda t, c: c.extra["population"].__setitem__("limit", "far"),
        lambda t, c: c.extra.__setitem__("population", "yes"),
    ],
    ids=["missing", "wrong-size", "not-finite", "zero-scale", "limit-not-a-number", "not-a-record"],
)
def test_a_damaged_check_is_one_clear_error_not_a_check_skipped(tmp_path, damage):
    card, tensors = load_bundle(WEIGHTS_DIR, "pneumonia")
    damage(tensors, card)
    save_bundle(tmp_path, card, tensors)
    with pytest.raises(ModelWeightsError, match="damaged population check") as err:
        ModelStore(tmp_path).classifier("pneumonia")
    assert "vesalius train pneumonia" in err.value.one_line()


def _unfamiliar(p: float) -> ToolResult:
    return ToolResult(
        tool="pneumonia_classifier",
        applied=True,
        reason="r",
        probabilities=[
            Probability(
                label="pneumonia", probability=p, threshold=0.5, above_threshold=p >= 0.5, in_training_range=False
            )
        ],
    )


def test_an_image_unlike_the_training_images_raises_no_alarm_and_answers_nothing():
    tools = [_unfamiliar(0.97)]
    assert not tools[0].probabilities[0].flagged
    assert model_alerts(tools, "clinician") == []
    assert short_answer("Is there pneumonia?", FILM, tools) is None
    text = direct_answer(
        None, tools, FILM, patient=False, explain=False, first_passage=None, model_configured=False, question=ASKED
    )
    other = direct_answer(
        None, tools, FILM, patient=False, explain=False, first_passage=None, model_configured=False, question="Size?"
    )
    assert "pneumonia classifier" not in other  # a question about something else: its silence is not the reason
    assert (
        text.startswith("Cannot tell from these tools")
        and "unlike the images the pneumonia classifier learnt from" in text
    )


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry.default(ModelStore(), plugins=False)


def _pneumonia(registry, path, tmp_path):
    kind, results = registry.run(load_study(path), {"pneumonia_classifier"}, tmp_path)
    assert kind.is_chest_xray, path.name
    [result] = [r for r in results if r.tool == "pneumonia_classifier"]
    return result


def test_adult_chest_films_are_called_unlike_the_childrens_films_and_raise_no_alarm(registry, shared_data, tmp_path):
    """VQA-RAD's adult films (the check was fitted against them: the card holds the cross-fitted rate) against
    Kermany validation films (children, never trained on)."""
    with LABELS.open(newline="") as f:
        adults = [r["image_name"] for r in csv.DictReader(f) if r["modality"] == "chest_xray_frontal"][:8]
    for name in adults:
        result = _pneumonia(registry, shared_data / "vqa-rad" / "images" / name, tmp_path)
        [p] = result.probabilities
        assert p.in_training_range is False and not p.flagged, name
        assert "not to be relied on" in result.summary and result.caveats[0].startswith("outside its training range")
        assert "population_check_score" in result.measurements
    paths, _, _, held = kermany_files(shared_data)
    children = [paths[i] for i in np.flatnonzero(held)[::97][:8]]
    familiar = [_pneumonia(registry, p, tmp_path).probabilities[0].in_training_range for p in children]
    assert sum(familiar) >= 7


def _film_as_dicom(film, tmp_path, age: str):
    pixels = np.asarray(Image.open(film).convert("L"))
    return write_image(tmp_path / f"film-{age}.dcm", pixels, modality="CR", body_part="CHEST", PatientAge=age)


def test_a_recorded_adult_age_puts_a_childs_film_outside_the_range(registry, shared_data, tmp_path):
    paths, labels, _, held = kermany_files(shared_data)
    film = paths[np.flatnonzero(held & (labels == 1))[0]]
    child = _pneumonia(registry, _film_as_dicom(film, tmp_path, "004Y"), tmp_path)
    adult = _pneumonia(registry, _film_as_dicom(film, tmp_path, "045Y"), tmp_path)
    assert child.probabilities[0].in_training_range is True
    assert adult.probabilities[0].in_training_range is False and not adult.probabilities[0].flagged
    assert "the patient is 45 years old and the model learnt from children aged 1-5" in adult.summary
    # The same pixels, so the same probability: only what may be concluded from it changed.
    assert adult.probabilities[0].probability == child.probabilities[0].probability
    anomaly = registry.run(load_study(_film_as_dicom(film, tmp_path, "045Y")), {"chest_anomaly"}, tmp_path)[1]
    [result] = [r for r in anomaly if r.tool == "chest_anomaly"]
    assert result.caveats[0].startswith("outside its training range: the patient is 45 years old")


def test_the_card_reports_the_check_on_shifted_copies_and_adult_films(registry):
    card = registry.store.classifier("pneumonia").card
    adults = card.metrics["adult_chest_films"]
    assert adults["n"] >= 50 and adults["alarms_with_check"] < adults["above_threshold_without_check"]
    assert adults["outside_training_range"] > 0.9
    shift = card.metrics["shift"]
    assert shift["in_distribution"]["outside_training_range"] <= 0.02
    assert shift["worst_over_shifts"]["sensitivity"] >= 0.95  # the screening point holds on every copy
    text = (WEIGHTS_DIR / "pneumonia.md").read_text()
    assert "Adult chest films (a population it never saw)" in text and "unlike training" in text
    json.dumps(card.metrics)  # the card stays plain JSON


def test_the_pneumonia_finishing_steps_write_the_check_and_the_cross_fitted_shift_table(shared_data, tmp_path):
    """What `vesalius train pneumonia` does after training, on a small untrained network and a few hundred films:
    the bundle carries a check that loads, the card the shift table and the adult films' numbers."""
    from dataclasses import replace

    from vesalius.vision.models.net import CompactResNet, NetConfig
    from vesalius.vision.train import datasets
    from vesalius.vision.train.recipes import CLASSIFIERS, finish_classifier_bundle
    from vesalius.vision.train.shift import SHIFTS

    full = datasets.kermany(shared_data)
    rng = np.random.default_rng(0)

    def part(split, n):
        keep = np.sort(rng.choice(len(split.labels), n, replace=False))
        return datasets.Split(split.images[keep], split.labels[keep], split.groups[keep], tuple(keep.astype(str)))

    ds = replace(full, train=part(full.train, 300), val=part(full.val, 160))
    torch.manual_seed(0)
    net = CompactResNet(NetConfig(width=4, classes=1, input_size=224)).eval()
    recipe = replace(CLASSIFIERS["pneumonia"].recipe, net=net.config)
    card = finish_classifier_bundle("pneumonia", net, ds, recipe, 0.0, shared_data, tmp_path)
    assert set(card.metrics["shift"]) == {"in_distribution", *SHIFTS, "worst_over_shifts"}
    assert all("outside_training_range" in row for row in card.metrics["shift"].values())
    assert card.metrics["adult_chest_films"]["n"] >= 50
    assert card.operating_point.endswith("and on each shifted copy of it")
    model = ModelStore(tmp_path).classifier("pneumonia")
    assert model.population is not None and model.population.limit == pytest.approx(card.extra["population"]["limit"])
