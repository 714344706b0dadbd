import numpy as np
import pytest
from PIL import Image

from vesalius.vision import load_study
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.tools import ToolRegistry
from vesalius.vision.tools.ct_attenuation import BANDS


def _png(tmp_path, array, name="x.png"):
    path = tmp_path / name
    Image.fromarray(array.astype(np.uint8), "L").save(path)
    return load_study(path, modality="CR")


def default_tools():
    return ToolRegistry.default(plugins=False).tools


OTHER = StudyKind(kind="mri", source="dicom_tags", reason="DICOM Modality is MR")


def test_registry_lists_each_tool_once_with_its_declaration():
    tools = default_tools()
    assert {"image_quality", "ct_attenuation", "asymmetry_map", "pneumonia_classifier", "chest_anomaly"} <= set(tools)
    assert all(t.name == name and t.description and t.applies_to and t.answers for name, t in tools.items())


def test_ct_attenuation_bands_cover_the_slice(ct_path, tmp_path):
    study = load_study(ct_path)
    result = default_tools()["ct_attenuation"].run(study, tmp_path)
    hu = study.values
    # Recompute the fat band independently from the HU values.
    assert result.measurements["fat_fraction"] == pytest.approx(np.mean((hu >= -190) & (hu < -30)), abs=1e-4)
    air_lung = result.measurements["air_fraction"] + result.measurements["lung_or_gas_fraction"]
    assert air_lung == pytest.approx(np.mean(hu < -500), abs=1e-3)
    assert len([k for k in result.measurements if k.endswith("_fraction")]) == len(BANDS) + 1
    assert "HU" in result.summary


def test_ct_attenuation_refuses_other_modalities(mr_path):
    assert "needs a CT image" in default_tools()["ct_attenuation"].applicability(load_study(mr_path), OTHER)


def test_asymmetry_map_finds_a_one_sided_blob_and_writes_a_heatmap(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(100, 5, (256, 256))
    base[160:200, 30:70] += 120  # a bright patch on the image's left only
    study = _png(tmp_path, np.clip(base, 0, 255))
    result = default_tools()["asymmetry_map"].run(study, tmp_path / "maps")
    assert result.regions, result.summary
    top = result.regions[0]
    assert 160 - top.height <= top.y <= 200 and 30 - top.width <= top.x <= 70
    assert top.side == "brighter on image left" and top.score > 2.5
    heat = Image.open(result.heatmap_path)
    assert heat.size == (256, 256) and heat.mode == "RGB"
    assert any("not a trained" in c for c in result.caveats)


def test_asymmetry_map_is_quiet_on_a_symmetric_image(tmp_path):
    rng = np.random.default_rng(2)
    half = rng.normal(100, 5, (256, 128))
    study = _png(tmp_path, np.clip(np.hstack([half, half[:, ::-1]]), 0, 255))
    result = default_tools()["asymmetry_map"].run(study, None)
    assert result.regions == [] and result.heatmap_path is None


def test_asymmetry_map_refuses_colour_and_ultrasound(tmp_path):
    rgb = tmp_path / "c.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "RGB").save(rgb)
    tool = default_tools()["asymmetry_map"]
    assert "greyscale" in tool.applicability(load_study(rgb), OTHER)
    grey = tmp_path / "g.png"
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(grey)
    assert "US" in tool.applicability(load_study(grey, modality="US"), OTHER)


def test_image_quality_flags_low_contrast(tmp_path):
    flat = _png(tmp_path, np.full((200, 200), 120) + np.random.default_rng(0).integers(0, 3, (200, 200)))
    result = default_tools()["image_quality"].run(flat, None)
    assert "low contrast" in result.summary
    ramp = _png(tmp_path, np.tile(np.linspace(0, 255, 200), (200, 1)), "ramp.png")
    assert default_tools()["image_quality"].run(ramp, None).summary.startswith("Image quality adequate")
