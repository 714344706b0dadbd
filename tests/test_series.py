"""Series: folders, zips and DICOMDIRs of slices become one volume in spatial order, within the limits."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from dicom_factory import order_marks, write_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vesalius.vision import StudyError, load_study
from vesalius.vision.options import IngestOptions
from vesalius.vision.slices import choose_slices


def test_folder_is_ordered_by_position_not_by_name_or_instance_number(tmp_path):
    write_series(tmp_path / "s", 12)
    study = load_study(tmp_path / "s")
    s = study.summary
    assert (s.source_kind, s.stack, s.frames, s.modality, s.physical_unit) == ("folder", "volume", 12, "CT", "HU")
    assert study.volume.shape == (12, 128, 128) and study.volume.dtype == np.float32
    assert order_marks(study.volume, -1024) == list(range(12))
    assert s.slice_spacing_mm == pytest.approx(2.5)
    assert s.frame_shown == 6 and len(study.sources) == 12
    assert "Doe^Jane" not in s.model_dump_json()


def test_zip_of_a_series_loads_like_the_folder(tmp_path):
    paths = write_series(tmp_path / "s", 6)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in paths:
            z.write(p, f"export/{p.name}")
        z.writestr("export/README.txt", "not dicom")
    study = load_study(archive)
    assert study.summary.source_kind == "zip"
    assert order_marks(study.volume, -1024) == list(range(6))
    assert any("1 unreadable" in w for w in study.warnings)


def test_several_series_show_the_largest_and_name_the_others(tmp_path):
    write_series(tmp_path / "mix", 5, series_number=3)
    write_series(tmp_path / "mix", 2, series_number=7, shuffle_seed=1)
    study = load_study(tmp_path / "mix")
    assert study.summary.frames == 5
    assert any("2 series" in w and "series 7" in w and "--series" in w for w in study.warnings)
    assert load_study(tmp_path / "mix", options=IngestOptions(series=7)).summary.frames == 2
    with pytest.raises(StudyError, match="no series number 9") as err:
        load_study(tmp_path / "mix", options=IngestOptions(series=9))
    assert "series 3" in err.value.remedy and "series 7" in err.value.remedy


def test_uneven_spacing_and_repeated_positions_are_reported(tmp_path):
    paths = write_series(tmp_path / "s", 8)
    paths[4].unlink()  # a missing slice leaves a gap
    study = load_study(tmp_path / "s")
    assert study.summary.frames == 7
    assert any("uneven" in w for w in study.warnings)


def test_the_voxel_limit_refuses_before_decoding(tmp_path):
    write_series(tmp_path / "s", 4)
    with pytest.raises(StudyError, match="over the .* limit"):
        load_study(tmp_path / "s", options=IngestOptions(max_voxels=3 * 128 * 128))


def test_a_zip_bomb_is_refused_on_its_declared_size(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.dcm", b"\0" * 50_000_000)
    with pytest.raises(StudyError, match="expand to"):
        load_study(archive, options=IngestOptions(max_file_bytes=10_000_000))


def test_folder_without_images_says_what_it_found(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StudyError, match="no DICOM image .*1 unreadable"):
        load_study(tmp_path)


def test_dicomdir_opens_the_series_it_lists(shared_data):
    dicomdir = shared_data / "dicom" / "pydicom-test-files" / "dicomdirtests" / "DICOMDIR"
    study = load_study(dicomdir)
    assert study.summary.source_kind == "dicomdir"
    assert study.summary.frames >= 1 and study.values.ndim == 2
    assert any("series" in w for w in study.warnings)  # the disc holds several patients' series


def test_dicomdir_without_its_files_says_copy_the_folder(shared_data, tmp_path):
    copy = tmp_path / "DICOMDIR"
    copy.write_bytes((shared_data / "dicom" / "pydicom-test-files" / "dicomdirtests" / "DICOMDIR").read_bytes())
    with pytest.raises(StudyError, match="none of them") as err:
        load_study(copy)
    assert "whole disc or folder" in err.value.remedy


def test_slices_for_a_lung_question_are_those_with_lung(tmp_path):
    write_series(tmp_path / "s", 9)
    study = load_study(tmp_path / "s")
    # Make slices 2 and 3 air-filled lung (-850 HU) on most of their area; the rest stay soft tissue.
    study.volume[:, 10:120, 10:120] = 40.0
    study.volume[2:4, 10:120, 10:120] = -850.0
    choice = choose_slices(study, count=3, focus="lung")
    assert choice.key in (2, 3) and set(choice.indices) <= {2, 3} and "lung" in choice.reason
    even = choose_slices(study, count=3)
    assert even.indices == [0, 4, 8]
    assert choose_slices(study, count=3, requested=[9, 1]).indices == [0, 8]
    with pytest.raises(StudyError, match="image 10 does not exist"):
        choose_slices(study, count=1, requested=[10])


def test_a_huge_declared_size_is_refused_before_decoding(tmp_path, ct_path):
    """Header values alone decide: a forged 60000x60000x4000 image fails fast, without allocating anything."""
    import pydicom

    ds = pydicom.dcmread(ct_path)
    for attrs, needle in (
        ({"Rows": 60000, "Columns": 60000}, "pixels per frame"),
        ({"NumberOfFrames": 90000}, "frames"),
    ):
        forged = ds.copy()
        for key, value in attrs.items():
            setattr(forged, key, value)
        forged.save_as(tmp_path / "forged.dcm")
        with pytest.raises(StudyError, match=f"over the .* limit|{needle}"):
            load_study(tmp_path / "forged.dcm")


@settings(max_examples=40, deadline=30_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_series_with_a_mutated_slice_loads_or_fails_with_a_study_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    paths = write_series(folder, 4)
    victim = paths[data.draw(st.integers(0, 3))]
    raw = bytearray(victim.read_bytes())
    # Offsets modulo the length: fresh UIDs make each run's files a few bytes longer or shorter.
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, 1 << 20)) % len(raw)] = data.draw(st.integers(0, 255))
    victim.write_bytes(bytes(raw[: max(64, data.draw(st.integers(0, 1 << 20)) % (len(raw) + 1))]))
    try:
        study = load_study(folder)
    except StudyError as exc:
        assert exc.problem and exc.remedy
    else:
        assert study.render().size == (study.summary.columns, study.summary.rows)
