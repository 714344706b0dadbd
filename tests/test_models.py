"""The shipped models: they load without network, their cards are complete, their outputs keep their schema, and
on a few validation images from the shared data they separate pneumonia from normal films."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesalius.vision import load_study
from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.card import WEIGHTS_DIR, load_bundle
from vesalius.vision.models.gate import CHEST_XRAY
from vesalius.vision.models.store import ModelStore
from vesalius.vision.tools import ToolRegistry
from vesalius.vision.train.datasets import kermany_files

SHIPPED = ("pneumonia", "chest_anomaly", "modality_gate", "breastmnist", "pneumoniamnist")


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry.default(ModelStore(), plugins=False)


@pytest.fixture(scope="module")
def validation_films(shared_data) -> dict[int, list[Path]]:
    """Six normal and six pneumonia films of validation patients (never seen in training), chosen by seed."""
    paths, labels, _, held = kermany_files(shared_data)
    rng = np.random.default_rng(7)
    return {
        label: [paths[i] for i in rng.choice(np.flatnonzero(held & (labels == label)), 6, replace=False)]
        for label in (0, 1)
    }


def test_shipped_weights_fit_the_budget_and_every_card_is_complete():
    total = sum(f.stat().st_size for f in WEIGHTS_DIR.glob("*.safetensors"))
    assert total <= 20 * 1024 * 1024
    for name in SHIPPED:
        card, tensors = load_bundle(WEIGHTS_DIR, name)
        assert card.data and card.licence and card.intended_use and card.limitations and card.recipe
        assert card.metrics and card.metrics_split
        assert (WEIGHTS_DIR / f"{name}.md").read_text().startswith(f"# Model card: {name}")
        assert all(np.isfinite(t.numpy()).all() for t in tensors.values() if t.is_floating_point())


def test_validation_metrics_meet_the_targets():
    """The numbers the cards report (measured by `vesalius train` on validation) meet the issue's targets."""
    pneumonia = load_bundle(WEIGHTS_DIR, "pneumonia")[0].metrics
    anomaly = load_bundle(WEIGHTS_DIR, "chest_anomaly")[0].metrics
    assert pneumonia["auroc"] >= 0.97
    assert pneumonia["ece_after"] <= 0.05
    assert anomaly["auroc_normal_vs_pneumonia"] >= 0.90
    assert load_bundle(WEIGHTS_DIR, "modality_gate")[0].metrics["non_chest_accepted_as_chest_xray"] == 0


def test_a_damaged_bundle_is_a_clear_error(tmp_path):
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"pneumonia{suffix}").write_bytes((WEIGHTS_DIR / f"pneumonia{suffix}").read_bytes())
    (tmp_path / "pneumonia.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelWeightsError, match="damaged.*vesalius train pneumonia"):
        ModelStore(tmp_path).classifier("pneumonia")
    with pytest.raises(ModelWeightsError, match="not in"):
        ModelStore(tmp_path).classifier("no_such_model")
    # A bundle the folder does not hold still comes from the package: a folder replaces only what it has.
    store = ModelStore(tmp_path)
    assert store.folder("breastmnist") == WEIGHTS_DIR and store.folder("pneumonia") == tmp_path
    assert store.classifier("breastmnist").card.name == "breastmnist"


def test_classifier_output_is_a_calibrated_probability(registry, tmp_path):
    store = registry.store
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 260), dtype=np.uint8), "L")
    [p] = store.classifier("pneumonia").predict(image)
    assert p.label == "pneumonia" and 0 <= p.probability <= 1
    assert p.threshold is not None and p.above_threshold == (p.probability >= p.threshold)


def test_pneumonia_films_score_higher_than_normal_ones(registry, validation_films):
    model = registry.store.classifier("pneumonia")
    probs = {label: model.probabilities([Image.open(p) for p in paths]) for label, paths in validation_films.items()}
    assert probs[1].mean() > probs[0].mean() + 0.3
    assert (probs[1] >= model.card.threshold).sum() >= 5  # a screening threshold misses few


def test_anomaly_heatmap_and_regions(registry, validation_films, tmp_path):
    detector = registry.store.anomaly()
    scores = {}
    for label, paths in validation_films.items():
        maps = detector.patch_maps([Image.open(p) for p in paths])
        scores[label] = [detector.result(m)[0].score for m in maps]
    assert np.mean(scores[1]) > np.mean(scores[0])
    study = load_study(validation_films[1][0])
    result = registry.tools["chest_anomaly"].run(study, tmp_path)
    heat = Image.open(result.heatmap_path)
    assert heat.size == study.image.size and heat.mode == "RGB"
    assert result.anomaly and 0 <= result.anomaly.normal_percentile <= 100
    for r in result.regions:
        assert 0 <= r.x < heat.width and 0 <= r.y < heat.height and r.x + r.width <= heat.width + 1
        assert r.score > 1 and "image" in r.side


@pytest.mark.parametrize(
    "file,kind",
    [
        ("pydicom-test-files/CT_small.dcm", "ct"),
        ("pydicom-test-files/MR_small.dcm", "mri"),
        ("pydicom-data/US1_UNCR.dcm", "ultrasound"),
    ],
)
def test_gate_refuses_chest_models_on_other_modalities_by_tags(registry, shared_data, file, kind):
    study = load_study(shared_data / "dicom" / file)
    decided, results = registry.run(study, registry.tools, None)
    assert decided.kind == kind and decided.source == "dicom_tags"
    by_name = {r.tool: r for r in results}
    for name in ("pneumonia_classifier", "chest_anomaly"):
        assert not by_name[name].applied
        assert by_name[name].reason == f"trained on frontal chest X-rays only; this study is {decided.described()}"
    assert decided.described().lower().startswith(kind[:2])


def test_gate_reads_plain_images(registry, shared_data, validation_films):
    cxr = load_study(validation_films[0][0])
    assert registry.kind(cxr).kind == CHEST_XRAY
    pathology = load_study(max((shared_data / "pathvqa" / "images").iterdir()))
    assert registry.kind(pathology).kind != CHEST_XRAY
    rows = [
        r.split(",")
        for r in (Path(__file__).parents[1] / "vision/train/labels/vqa_rad_modality.csv").read_text().splitlines()[1:]
    ]
    ct_image = next(name for name, _, modality, _ in rows if modality == "ct")
    decided = registry.kind(load_study(shared_data / "vqa-rad" / "images" / ct_image))
    assert decided.kind != CHEST_XRAY and decided.source == "image_classifier"
    # An adult chest film stored as an RGB JPEG (chroma noise in the channels) is greyscale, and a chest X-ray.
    film = load_study(shared_data / "vqa-rad" / "images" / next(r[0] for r in rows if r[2] == "chest_xray_frontal"))
    assert not film.summary.colour and registry.kind(film).kind == CHEST_XRAY


def test_classify_many_images_in_one_process(shared_data, validation_films, ct_path, tmp_path, cli_env):
    import subprocess

    from test_cli import VESALIUS

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    files = [*validation_films[0][:2], *validation_films[1][:2], ct_path, broken]
    run = subprocess.run(
        [VESALIUS, "classify", *map(str, files), "--json", "--heatmaps", str(tmp_path / "h")],
        capture_output=True,
        check=False,
        text=True,
        env=cli_env,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr  # one file could not be read; the others were still classified
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["path"] for r in records] == list(map(str, files))
    for r in records[:4]:
        assert set(r["applied"]) >= {"pneumonia_classifier", "chest_anomaly"}
        assert r["kind"]["kind"] == CHEST_XRAY
        assert Path(r["anomaly"]["chest_anomaly"]["heatmap_path"]).exists()
    p = [r["probabilities"]["pneumonia_classifier"][0]["probability"] for r in records[:4]]
    assert min(p[2:]) > max(p[:2]) - 0.5 and np.mean(p[2:]) > np.mean(p[:2])
    assert records[4]["applied"] == [] and "CT" in records[4]["not_applied"]["pneumonia_classifier"]
    assert records[5]["error"] and "broken.png" in records[5]["path"]
    assert "1 of 6 file(s) could not be read" in run.stderr


def test_anomaly_regions_are_tight_and_inside_the_lung_fields(registry, validation_films):
    """A film with diffuse change has most patches beyond the normal limit: its regions are still the cores of the
    unusual areas, never a box around the whole image."""
    from vesalius.vision.models.anomaly import MAX_REGION_AREA, lung_fields, regions

    detector = registry.store.anomaly()
    found = 0
    for paths in validation_films.values():
        for m in detector.patch_maps([Image.open(p) for p in paths]):
            _, heat = detector.result(m)
            lungs = lung_fields(*heat.shape)
            for r in regions(heat):
                found += 1
                assert r.area_fraction <= r.width * r.height + 0.01 and r.width * r.height <= MAX_REGION_AREA + 0.01
                cy, cx = int((r.y + r.height / 2) * heat.shape[0]), int((r.x + r.width / 2) * heat.shape[1])
                assert lungs[min(cy, heat.shape[0] - 1), min(cx, heat.shape[1] - 1)] or r.width < 0.3
    assert found > 0
    broad = np.full((28, 28), 3.0)
    broad[10:14, 6:10] = 9.0  # a diffuse change with one focus
    (core,) = regions(broad, max_regions=1)
    assert core.area_fraction <= MAX_REGION_AREA and core.peak == 9.0 and core.x < 0.5


def test_the_pneumonia_card_sets_shifted_numbers_beside_in_distribution_ones(registry):
    card = registry.store.classifier("pneumonia").card
    shift = card.metrics["shift"]
    assert {"in_distribution", "worst_over_shifts", "rotated 10 degrees", "JPEG quality 20"} <= shift.keys()
    worst = shift["worst_over_shifts"]
    assert worst["auroc"] <= shift["in_distribution"]["auroc"] and worst["ece"] >= shift["in_distribution"]["ece"]
    assert "under acquisition shift" in (WEIGHTS_DIR / "pneumonia.md").read_text()
    from vesalius.vision.tools.model_tools import model_info

    assert "on shifted copies of those films as low as AUROC" in model_info(card, registry.store).validation


def test_each_shift_changes_the_film_and_is_measured():
    from vesalius.vision.train.shift import SHIFTS, shift_report, shifted

    rng = np.random.default_rng(0)
    films = rng.integers(40, 200, (8, 64, 64)).astype(np.uint8)
    for name, shift in SHIFTS.items():
        assert not np.array_equal(shifted(films, shift), films), name
    labels = np.array([0, 1] * 4)
    brightness = lambda x: (x.reshape(len(x), -1).mean(1) / 255, None)  # a stand-in model, no population check
    report = shift_report(brightness, films, labels, 0.5)
    assert set(report) == {"in_distribution", *SHIFTS, "worst_over_shifts"}
    assert report["worst_over_shifts"]["auroc"] == min(v["auroc"] for k, v in report.items() if k in SHIFTS)
