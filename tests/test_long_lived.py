"""A `Vesalius` kept alive for hours: stored threads from earlier versions resume, and memory levels off."""

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

import vesalius
from vesalius.agent.state import STATE_VERSION

FIXTURE = Path(__file__).with_name("data") / "threads-v1.sqlite"
FIXTURE_THREAD = "11f14afdc8fe"  # two turns asked by Vesalius 0.1 about CT_small.dcm
FIXTURE_STUDY = Path("/tmp/vesalius-fixture/CT_small.dcm")  # where 0.1 read the study from; stored in the thread


@pytest.fixture
def v1_store(tmp_path, make_settings):
    """A data folder whose threads.sqlite was written by Vesalius 0.1 (before state versions), with its study
    back where that thread read it."""
    FIXTURE_STUDY.parent.mkdir(parents=True, exist_ok=True)
    if not FIXTURE_STUDY.exists():
        shutil.copyfile(get_testdata_file("CT_small.dcm"), FIXTURE_STUDY)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(FIXTURE, data / "threads.sqlite")
    return make_settings(data_dir=data)


def test_a_thread_stored_by_0_1_resumes(v1_store):
    with vesalius.Vesalius(v1_store) as v:
        old = v.thread(FIXTURE_THREAD)
        assert old["state_version"] == STATE_VERSION  # upgraded as it is read
        before = v.history(FIXTURE_THREAD)
        assert [t.turn for t in before] == [1, 2]
        assert before[1].question == "Is there a pleural effusion?"
        answer = v.ask("What is the attenuation of the tissue?", thread_id=FIXTURE_THREAD)
        assert answer.turn == 3 and answer.study.modality == "CT"
        after = v.history(FIXTURE_THREAD)
    assert [t.turn for t in after] == [1, 2, 3] and after[:2] == before


def test_a_thread_from_a_newer_version_is_refused_and_left_alone(v1_store):
    with vesalius.Vesalius(v1_store) as v:
        v.ask("What is the attenuation of the tissue?", thread_id=FIXTURE_THREAD)
        graph_config = {"configurable": {"thread_id": FIXTURE_THREAD}}
        v.thread(FIXTURE_THREAD)  # opens the store
        v._graph.update_state(graph_config, {"state_version": STATE_VERSION + 1}, as_node="compose")
        stored = sqlite3.connect(v1_store.threads_db).execute("select count(*) from checkpoints").fetchone()
        with pytest.raises(vesalius.AgentError, match=f"newer Vesalius \\(state version {STATE_VERSION + 1}"):
            v.ask("And now?", thread_id=FIXTURE_THREAD)
    assert sqlite3.connect(v1_store.threads_db).execute("select count(*) from checkpoints").fetchone() == stored


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _large_ct(path: Path, seed: int) -> Path:
    """A 768 x 768 CT slice (2.25 MB as float32 once loaded) with content of its own."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(seed)
    base = np.kron(ds.pixel_array, np.ones((6, 6), dtype=ds.pixel_array.dtype))
    pixels = (base + rng.integers(0, 20, base.shape)).astype(ds.pixel_array.dtype)
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="resident memory is read from /proc")
def test_memory_levels_off_over_fifty_studies(make_settings, tmp_path):
    studies = [_large_ct(tmp_path / f"ct{i:02d}.dcm", i) for i in range(50)]
    rss = []
    with vesalius.Vesalius(make_settings(study_cache_mb=6)) as v:
        for path in studies:
            v.ask("Is there a pleural effusion on this CT?", study=path)
            rss.append(_rss_mb())
            assert v.deps.cached_studies() <= 4
        cached = v.deps.cached_studies()
    # 6 MB holds two of these 2.25 MB volumes and their renderings: the byte bound, not the count, decides.
    assert cached <= 2
    warm, end = rss[9], rss[-1]
    # Forty more studies of 2.25 MB each would add 90 MB if each stayed; allow noise from the allocator.
    assert end - warm < 40, f"resident memory grew from {warm:.0f} MB to {end:.0f} MB: {[round(r) for r in rss]}"
