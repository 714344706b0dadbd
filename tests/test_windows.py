"""Display: the standard's VOI functions, the presets, the file's own LUTs and windows, MONOCHROME1."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

from vesalius.vision import StudyError, load_study
from vesalius.vision.windows import PRESETS, Window, parse_window, to_grey


def test_linear_window_follows_ps3_3_c_11_2_1_2():
    # LINEAR with c=100, w=50: x <= 75-0.5 -> 0, x > 124.5 -> 255, in between a ramp.
    values = np.array([0.0, 74.5, 100.0, 124.6, 1000.0], dtype=np.float32)
    grey = to_grey(values, Window(center=100, width=50, source="user"))
    assert grey[0] == grey[1] == 0 and grey[3] == grey[4] == 255 and 120 <= grey[2] <= 135


def test_sigmoid_window_is_half_grey_at_its_center_and_monotonic():
    values = np.linspace(-500, 500, 101, dtype=np.float32)
    grey = to_grey(values, Window(center=0, width=200, function="SIGMOID", source="dicom"))
    assert np.all(np.diff(grey.astype(int)) >= 0) and abs(int(grey[50]) - 127) <= 1 and grey[0] < 5


def test_presets_and_user_windows_parse_or_explain():
    assert parse_window("lung").center == PRESETS["lung"][0] and parse_window("LUNG").source == "preset"
    assert parse_window("40,400") == Window(center=40, width=400, source="user")
    assert parse_window("auto") is None
    for bad, needle in (
        ("lungs", "unknown window preset"),
        ("40,-1", "positive"),
        ("a,b", "center,width"),
        ("inf,5", "center must be a finite"),
        ("nan,400", "center must be a finite"),
    ):
        with pytest.raises(StudyError, match=needle):
            parse_window(bad)


def test_a_preset_changes_the_rendering_not_the_values(ct_path):
    study = load_study(ct_path)
    lung = study.focused(window=parse_window("lung"))
    bone = study.focused(window=parse_window("bone"))
    assert lung.values is study.values or np.shares_memory(lung.values, study.values)
    assert np.asarray(lung.image).mean() > np.asarray(bone.image).mean()  # soft tissue is bright in a lung window
    assert lung.summary.window.name == "lung" and study.summary.window.name != "lung"


def test_voi_lut_sequence_is_used_for_display(shared_data):
    path = shared_data / "dicom" / "pydicom-data" / "vlut_04.dcm"
    study = load_study(path)
    assert study.summary.window.source == "dicom-lut"
    ds = pydicom.dcmread(path)
    expected = apply_voi_lut(apply_modality_lut(pixel_array(ds), ds), ds, prefer_lut=True).astype(np.float64)
    expected = expected * 255.0 / expected.max()
    assert np.abs(np.asarray(study.image, dtype=np.float64) - expected).mean() < 2.0


def test_modality_lut_sequence_gives_the_values(shared_data):
    path = shared_data / "dicom" / "pydicom-data" / "mlut_18.dcm"
    ds = pydicom.dcmread(path)
    assert "ModalityLUTSequence" in ds
    study = load_study(path)
    assert np.array_equal(study.values, apply_modality_lut(pixel_array(ds), ds).astype(np.float32))


def test_monochrome1_is_inverted_for_display(shared_data):
    path = next((shared_data / "dicom" / "pydicom-data").glob("RG1_J2KI.dcm"))
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    study = load_study(path)
    assert study.invert
    values, grey = study.values, np.asarray(study.image, dtype=np.float64)
    # Higher stored values must look darker.
    assert np.corrcoef(values.ravel()[::7], grey.ravel()[::7])[0, 1] < -0.5


def test_several_stored_windows_are_all_offered(tmp_path, ct_path):
    ds = pydicom.dcmread(ct_path)
    ds.WindowCenter, ds.WindowWidth = [40, 500], [400, 2000]
    ds.WindowCenterWidthExplanation = ["SOFT", "BONE"]
    ds.save_as(tmp_path / "two.dcm")
    s = load_study(tmp_path / "two.dcm").summary
    assert [w.name for w in s.stored_windows] == ["SOFT", "BONE"]
    assert s.window == s.stored_windows[0] and s.window.source == "dicom"
