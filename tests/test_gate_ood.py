"""No trained model raises an alarm on an image it was not trained on, and the gate loses no image it should keep.

Images of nothing a model here knows (blank, constant, 1x1, noise, gradients, patterns, rendered text, scikit-image's
photographs, a blank DICOM ultrasound or chest film) go through `vision.load_study` and the default registry with
every tool wanted: no trained model may run, no probability may be above its threshold, and the gate must say why
in words. Validation images of each kind, when ../shared/data is here, are still accepted at the rates the gate's
card reports.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from vesalius.vision import load_study
from vesalius.vision.models.card import WEIGHTS_DIR, load_bundle
from vesalius.vision.models.gate import CHEST_XRAY, OTHER
from vesalius.vision.models.store import ModelStore
from vesalius.vision.tools import ToolRegistry

MODEL_TOOLS = ("pneumonia_classifier", "chest_anomaly", "breast_ultrasound_classifier")


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry.default(ModelStore(), plugins=False)


@pytest.fixture(scope="module")
def gate_card():
    return load_bundle(WEIGHTS_DIR, "modality_gate")[0]


def assert_no_alarm(registry: ToolRegistry, study):
    """Every tool wanted; none of the trained models runs, nothing is above a threshold, and the reason is words."""
    kind, results = registry.run(study, wanted=list(registry.tools), out_dir=None)
    by_name = {r.tool: r for r in results}
    for name in MODEL_TOOLS:
        assert not by_name[name].applied, f"{name} ran on {kind.kind}: {by_name[name].summary}"
        assert kind.reason in by_name[name].reason, by_name[name].reason
    for r in results:
        assert not any(p.above_threshold for p in r.probabilities), (r.tool, r.probabilities)
        assert not (r.anomaly and r.anomaly.unusual), r.tool
    assert not kind.accepted or kind.kind not in (CHEST_XRAY, "ultrasound")
    if not kind.accepted:  # nor the heuristic map: marked regions on a photograph would read as findings
        assert not by_name["asymmetry_map"].applied, by_name["asymmetry_map"].summary
    return kind


def _save(image: Image.Image, tmp_path: Path, name: str = "image.png") -> Path:
    path = tmp_path / name
    image.save(path)
    return path


def _grid(size: int, period: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (((xx // period + yy // period) % 2) * 255).astype(np.uint8)


def _text_page() -> Image.Image:
    page = Image.new("L", (600, 800), 250)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=18)
    lines = [
        "Radiology report",
        "Clinical question: pneumonia? Cough and fever for three days.",
        "Findings: the lungs are clear. No consolidation, effusion or pneumothorax.",
        "Impression: no radiographic evidence of pneumonia.",
    ]
    for i in range(30):
        draw.text((40, 30 + 24 * i), lines[i % len(lines)], fill=20, font=font)
    return page


SYNTHETIC = {
    "grey": lambda: Image.new("L", (512, 512), 128),
    "black": lambda: Image.new("L", (512, 512), 0),
    "white": lambda: Image.new("RGB", (640, 480), (255, 255, 255)),
    "one_pixel": lambda: Image.new("L", (1, 1), 200),
    "one_pixel_colour": lambda: Image.new("RGB", (1, 1), (255, 0, 0)),
    "tiny_noise": lambda: Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)),
    "noise": lambda: Image.fromarray(np.random.default_rng(2).integers(0, 256, (512, 512), dtype=np.uint8)),
    "colour_noise": lambda: Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)),
    "gradient": lambda: Image.fromarray(np.tile(np.linspace(0, 255, 512), (512, 1)).astype(np.uint8)),
    "radial_gradient": lambda: Image.fromarray(
        (255 * np.clip(np.hypot(*np.mgrid[-1:1:400j, -1:1:400j]) / 1.4, 0, 1)).astype(np.uint8)
    ),
    "checkerboard": lambda: Image.fromarray(_grid(512, 32)),
    "fine_checkerboard": lambda: Image.fromarray(_grid(256, 2)),
    "colour_field": lambda: Image.new("RGB", (300, 300), (40, 90, 200)),
    "text_page": _text_page,
}

PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "camera.png",
    "rocket.jpg",
    "horse.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "text.png",
    "page.png",
    "chessboard_GRAY.png",
    "moon.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "coins.png",
    "motorcycle_left.png",
)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_no_model_runs_on_synthetic_images(registry, tmp_path, name):
    kind = assert_no_alarm(registry, load_study(_save(SYNTHETIC[name](), tmp_path)))
    if name in ("grey", "black", "white", "colour_field"):
        assert kind.kind == "blank" and "no variation" in kind.reason
    if name.startswith("one_pixel") or name == "tiny_noise":
        assert kind.kind == "too_small" and "no model here reads images under" in kind.reason
    if name in ("noise", "colour_noise"):
        assert kind.kind == "noise" and "noise" in kind.reason


@pytest.mark.parametrize("picture", PHOTOS)
def test_no_model_runs_on_photographs(registry, tmp_path, picture):
    negatives = pytest.importorskip("vesalius.vision.train.negatives")
    pytest.importorskip("skimage", reason="scikit-image (the test extra) bundles the photographs")
    image = negatives.skimage_image(picture)
    kind = assert_no_alarm(registry, load_study(_save(image, tmp_path, Path(picture).stem + ".png")))
    assert kind.kind not in (CHEST_XRAY, "ultrasound")


def test_the_reason_says_the_gate_does_not_know_the_image(registry, tmp_path):
    """A picture the network sees (not a pixel-check refusal) and calls `other`: the reason says so in words."""
    kind = registry.kind(load_study(_save(_text_page(), tmp_path)))
    assert kind.kind in (OTHER, "uncertain"), kind
    if kind.kind == OTHER:
        assert "does not recognise this image as any kind it knows (other" in kind.reason
        assert kind.probabilities[OTHER] >= max(kind.probabilities.values())


def _dicom_like(tmp_path: Path, modality: str, body_part: str, pixels: np.ndarray, name: str) -> Path:
    return write_image(tmp_path / name, pixels, modality=modality, body_part=body_part)


@pytest.mark.parametrize(
    "modality,part,value", [("US", "BREAST", 0), ("US", "BREAST", 900), ("CR", "CHEST", 1200), ("DX", "", 0)]
)
def test_a_blank_dicom_runs_no_model_whatever_its_tags(registry, tmp_path, modality, part, value):
    path = _dicom_like(tmp_path, modality, part, np.full((128, 128), value), f"{modality}.dcm")
    kind = assert_no_alarm(registry, load_study(path))
    assert kind.kind == "blank" and kind.source == "pixel_checks"


def test_a_noise_dicom_breast_ultrasound_runs_no_model(registry, tmp_path):
    noise = np.random.default_rng(5).integers(0, 4096, (256, 256))
    kind = assert_no_alarm(registry, load_study(_dicom_like(tmp_path, "US", "BREAST", noise, "us.dcm")))
    assert kind.kind == "noise"


@pytest.mark.parametrize(
    "file,kind",
    [
        ("pydicom-test-files/CT_small.dcm", "ct"),
        ("pydicom-test-files/MR_small.dcm", "mri"),
        ("pydicom-data/US1_UNCR.dcm", "ultrasound"),
        ("pydicom-data/gdcm-US-ALOKA-16.dcm", "ultrasound"),
        ("pydicom-data/OBXXXX1A.dcm", "ultrasound"),
        ("pydicom-data/RG3_J2KI.dcm", "other_xray"),
    ],
)
def test_real_dicom_studies_keep_their_kind(registry, shared_data, file, kind):
    """The pixel checks and the gate's veto lose no real DICOM study: each keeps the kind its tags give."""
    assert registry.kind(load_study(shared_data / "dicom" / file)).kind == kind


def test_a_real_ultrasound_tagged_breast_still_reaches_the_breast_model(registry, shared_data, tmp_path):
    ds = pydicom.dcmread(shared_data / "dicom" / "pydicom-data" / "gdcm-US-ALOKA-16.dcm")
    ds.BodyPartExamined = "BREAST"
    ds.save_as(tmp_path / "breast.dcm")
    kind, results = registry.run(load_study(tmp_path / "breast.dcm"), ["breast_ultrasound_classifier"], None)
    assert kind.kind == "ultrasound" and kind.probabilities  # the gate looked, and did not veto
    assert {r.tool: r for r in results}["breast_ultrasound_classifier"].applied


# --------------------------------------------------------------------------------------------------------------
# Property: random degenerate and synthetic images never raise an alarm


@st.composite
def synthetic_images(draw) -> Image.Image:
    w = draw(st.integers(1, 320))
    h = draw(st.one_of(st.just(w), st.integers(1, 320)))
    colour = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["constant", "gradient", "noise", "checker", "stripes", "blocks", "dots"]))
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    a, b = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    if style == "constant":
        t = np.zeros((h, w))
    elif style == "gradient":
        angle = draw(st.floats(0, 2 * math.pi))
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif style == "noise":
        t = rng.random((h, w))
    elif style in ("checker", "stripes"):
        period = draw(st.integers(1, 64))
        t = ((xx // period + (yy // period if style == "checker" else 0)) % 2).astype(float)
    elif style == "blocks":
        t = np.kron(rng.random((8, 8)), np.ones((max(1, h // 8 + 1), max(1, w // 8 + 1))))[:h, :w]
    else:
        t = (rng.random((h, w)) < draw(st.floats(0.001, 0.05))).astype(float)
    grey = a + (b - a) * t
    if colour:
        tint = rng.uniform(0.3, 1.0, 3)
        return Image.fromarray(np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8), "RGB")
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(image=synthetic_images())
def test_no_alarm_on_random_synthetic_images(registry, tmp_path_factory, image):
    path = _save(image, tmp_path_factory.mktemp("synthetic"))
    assert_no_alarm(registry, load_study(path))


# --------------------------------------------------------------------------------------------------------------
# In distribution: the validation images of each kind are still accepted, at the rates the card reports


def _slack(p: float, n: int) -> float:
    """How far a sample of n may fall below a rate p by chance (three standard errors, and one image)."""
    return 3 * math.sqrt(max(p * (1 - p), 0.0) / n) + 1 / n


def test_validation_images_of_each_kind_are_still_accepted(registry, gate_card, shared_data, tmp_path):
    """A seeded sample of the Kermany films of validation patients and of BreastMNIST's validation thumbnails (as
    PNGs at their own 28 px): accepted at the card's rate (less chance), each with the card's minimum probability."""
    from vesalius.vision.train.datasets import kermany_files, medmnist

    rates = gate_card.metrics.get("runtime_acceptance")
    assert rates, "the gate's card reports no runtime_acceptance: retrain with `vesalius train modality_gate`"
    needed = gate_card.extra["min_probability"]
    paths, _, _, held = kermany_files(shared_data)
    chosen = np.random.default_rng(11).choice(np.flatnonzero(held), 30, replace=False)
    films = [registry.kind(load_study(paths[i])) for i in chosen]
    accepted = [k for k in films if k.kind == CHEST_XRAY]
    assert len(accepted) / len(films) >= rates["kermany_val"] - _slack(rates["kermany_val"], len(films))
    assert all(k.probability >= needed[CHEST_XRAY] for k in accepted)

    breast = medmnist(shared_data, "breastmnist").val.images
    kinds = []
    for i in np.random.default_rng(12).choice(len(breast), 40, replace=False):
        pixels = breast[i]
        kinds.append(registry.kind(load_study(_save(Image.fromarray(pixels), tmp_path, f"b{i}.png"))))
    accepted = [k for k in kinds if k.kind == "ultrasound"]
    rate = rates["breastmnist_val"]
    assert len(accepted) / len(kinds) >= rate - _slack(rate, len(kinds))
    assert all(k.probability >= needed["ultrasound"] for k in accepted)


def test_the_card_reports_acceptance_and_per_family_rejection(gate_card):
    m = gate_card.metrics
    assert m["non_chest_accepted_as_chest_xray"] == 0
    assert m["ood_alarms"] == 0
    assert set(m["runtime_acceptance"]) >= {"kermany_val", "breastmnist_val", "gate_val_chest_xray_frontal"}
    assert any(not f["seen_in_training"] for f in m["ood_per_family"].values()), "no held-out negative family"
    for family, row in m["ood_per_family"].items():
        assert row["alarms"] == 0, family
    assert OTHER in gate_card.classes and set(gate_card.extra["min_probability"]) == set(gate_card.classes) - {OTHER}


# --------------------------------------------------------------------------------------------------------------
# The gate's data: negatives are deterministic and held out; no validation image of another model is trained on


def test_negatives_are_deterministic_and_validation_is_held_out():
    negatives = pytest.importorskip("vesalius.vision.train.negatives")
    pytest.importorskip("skimage", reason="scikit-image (the train and test extras) bundles the photographs")
    for family in negatives.FAMILIES:
        assert not set(family.train_pictures) & set(family.val_pictures), family.name
    assert set(negatives.VALIDATION_ONLY) >= {"scanned_text", "fundus"}
    first = [(n.name, np.asarray(n.image)) for n, _ in zip(negatives.negatives("val", seed=3), range(40), strict=False)]
    again = [(n.name, np.asarray(n.image)) for n, _ in zip(negatives.negatives("val", seed=3), range(40), strict=False)]
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    train_names = {n.name for n, _ in zip(negatives.negatives("train", seed=3), range(40), strict=False)}
    assert not train_names & {name for name, _ in first}


def test_the_gate_never_trains_on_another_models_validation_images(shared_data):
    from vesalius.vision.train.datasets import gate_items, kermany_files

    paths, _, _, held = kermany_files(shared_data)
    validation_films = {p.name for p, h in zip(paths, held, strict=True) if h}
    items = gate_items(shared_data)
    for item in items:
        if item.name.startswith("kermany/"):
            assert item.held == (item.name.removeprefix("kermany/") in validation_films), item.name
        if item.name.startswith("breastmnist/"):
            assert item.held == item.name.startswith("breastmnist/val/"), item.name
    groups = {}
    for item in items:
        groups.setdefault(item.group, set()).add(item.held)
    assert all(len(sides) == 1 for sides in groups.values()), "a patient or image on both sides of the split"
