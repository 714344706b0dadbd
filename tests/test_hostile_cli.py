"""The command line against careless and hostile input: every refusal is one line `error: <problem>. <what to do>`
with exit code 2, within bounded time and memory; nothing reaches the terminal that could drive it."""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vesalius.agent.cli import main

VESALIUS = str(Path(sys.executable).with_name("vesalius"))
ESCAPES = ("\x1b", "\x9b", "\x07", "\u202e")


def cli(env: dict[str, str], *args: str, stdin: bytes | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


def assert_refused(result, *expected: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    err = result.stderr
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, err


def not_utf8(text: str) -> str:
    """What Python hands a program for argument bytes that are not UTF-8."""
    return os.fsdecode(b"\xff\xfe" + text.encode())


def test_text_that_is_not_utf8_is_refused_in_every_command(cli_env, ct_path):
    assert_refused(cli(cli_env, "ask", "--study", str(ct_path), not_utf8("effusion?")), "question is not UTF-8")
    assert_refused(cli(cli_env, "kb", "search", not_utf8("effusion")), "query is not UTF-8")
    assert_refused(cli(cli_env, "kb", "show", not_utf8("C0032227")), "code is not UTF-8")
    queries = b"pleural effusion\n\xff\xfe bad line\n"
    assert_refused(cli(cli_env, "kb", "search", "--queries", "-", stdin=queries), "line 2: the query is not UTF-8")


def test_a_file_name_that_is_not_utf8_is_one_record_of_a_batch(cli_env, ct_path, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/scan\xff.dcm"))
    odd.write_bytes(ct_path.read_bytes())
    result = cli(cli_env, "classify", "--json", str(odd), str(ct_path))
    assert result.exit_code == 1, result.stderr  # a batch reports its failures per file, then exits 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert "not UTF-8" in records[0]["error"] and records[1]["error"] is None
    assert_refused(cli(cli_env, "ask", "--study", str(odd), "Is there an effusion?"), "study path has bytes")
    assert_refused(cli(cli_env, "classify", "--modality", "XYZ", str(ct_path)), "unknown modality code")


def test_chat_refuses_one_bad_line_and_goes_on(cli_env, ct_path):
    result = cli(cli_env, "chat", "--study", str(ct_path), stdin=b"\xff\xfe effusion?\nIs there an effusion?\n")
    assert result.exit_code == 0, result.stderr
    assert "error: the question is not UTF-8" in result.stderr
    assert "(turn 1)" in result.stdout and "(turn 2)" not in result.stdout


def test_endless_input_lines_are_refused_without_hanging(cli_env, ct_path):
    with open("/dev/zero", "rb") as zeros:  # a line that never ends
        assert_refused(cli(cli_env, "kb", "search", "--queries", "/dev/zero"), "line 1: a line is over 64 KB long")
        chat = CliRunner().invoke(main, ["chat", "--study", str(ct_path)], env=cli_env, input=zeros.read(8 * 2**20))
    assert chat.exit_code == 0 and "a line is over 64 KB long" in chat.stderr, chat.stderr
    assert "(turn" not in chat.stdout


def test_configuration_that_is_not_a_plain_file_is_refused(cli_env, ct_path, tmp_path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    ask = ("ask", "--study", str(ct_path), "Is there an effusion?")
    assert_refused(cli(cli_env | {"VESALIUS_CONFIG": str(fifo)}, *ask), "which is not a file")
    huge = tmp_path / "huge.toml"
    huge.write_text("# padding\n" * 200_000)
    assert_refused(cli(cli_env | {"VESALIUS_CONFIG": str(huge)}, *ask), "is over 1024 KB")
    data = Path(cli_env["VESALIUS_DATA_DIR"])
    data.mkdir(parents=True)
    os.mkfifo(data / "threads.sqlite")  # SQLite would wait for a writer for ever
    assert_refused(cli(cli_env, *ask), "threads.sqlite is not a regular file")
    assert_refused(cli(cli_env, "inspect", "--images", "-1", str(ct_path)), "--images -1 is negative")


def test_a_mistyped_option_is_one_line_too(cli_env):
    assert_refused(cli(cli_env, "ask", "--series", "abc", "q"), "'abc' is not a valid integer", "ask --help")
    assert_refused(cli(cli_env, "kb", "search", "--top", "0", "q"), "--top 0 is out of range")


def test_query_length_is_bounded_like_a_question(cli_env):
    assert_refused(cli(cli_env, "kb", "search", "x" * 5000), "the query is 5,000 characters long")


def test_unwritable_folders_are_refused_before_any_work(cli_env, ct_path, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_refused(
        cli(cli_env, "ask", "--heatmaps", str(blocker / "maps"), "--study", str(ct_path), "Is there an effusion?"),
        "cannot write to the heatmap folder",
    )
    env = cli_env | {"VESALIUS_CACHE_DIR": str(blocker / "cache")}
    assert_refused(
        cli(env, "ask", "--study", str(ct_path), "Is there an effusion?"), "cannot write to the cache folder"
    )
    assert_refused(cli(cli_env, "classify", "--heatmaps", str(blocker / "m"), str(ct_path)), "heatmap folder")
    assert_refused(cli(cli_env, "inspect", "--out", str(blocker / "o"), str(ct_path)), "the output folder")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VESALIUS_VLM_TIMEOUT_S", "-1", "invalid setting 'vlm_timeout_s'"),
        ("VESALIUS_TOP_K", "-3", "invalid setting 'top_k'"),
        ("VESALIUS_VLM_MAX_TOKENS", "-5", "invalid setting 'vlm_max_tokens'"),
        ("VESALIUS_MIN_CITATION_SCORE", "7", "invalid setting 'min_citation_score'"),
        ("VESALIUS_THREAD_WAIT_S", "-2", "invalid setting 'thread_wait_s'"),
        ("VESALIUS_CONFIG", "/nonexistent/vesalius.toml", "VESALIUS_CONFIG names /nonexistent/vesalius.toml"),
        ("VESALIUS_VLM_URL", "not a url", "invalid setting 'vlm_url'"),
    ],
)
def test_settings_out_of_range_are_refused(cli_env, ct_path, variable, value, expected):
    result = cli(cli_env | {variable: value}, "ask", "--study", str(ct_path), "Is there an effusion?")
    assert_refused(result, expected)


def test_control_sequences_never_reach_the_terminal(cli_env, tmp_path):
    hostile = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1m\u202efilm"
    missing = cli(cli_env, "ask", "--study", str(tmp_path / f"{hostile}.dcm"), "Is there an effusion?")
    assert_refused(missing, "no such file")
    assert not any(c in missing.stderr for c in ESCAPES)
    film = tmp_path / f"{hostile}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(film)
    question = f"Is there an effusion?\x1b[8m hidden \x1b[0m{hostile}"
    text = cli(cli_env, "ask", "--study", str(film), question)
    assert text.exit_code == 0, text.stderr
    assert not any(c in text.stdout + text.stderr for c in ESCAPES)
    as_json = cli(cli_env, "ask", "--json", "--study", str(film), question)
    assert as_json.exit_code == 0, as_json.stderr
    assert not any(c in as_json.stdout for c in ESCAPES)
    assert "\x1b" not in json.loads(as_json.stdout)["question"]


def test_series_on_a_single_file_does_not_apply(cli_env, ct_path):
    assert_refused(cli(cli_env, "ask", "--series", "3", "--study", str(ct_path), "Is there an effusion?"), "--series")


# --- Bounded time and memory, measured on the real process ------------------------------------------------------

_MEASURE = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, stdin=subprocess.DEVNULL)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(f'{r.returncode}\\t{peak}\\t' + r.stderr.replace(chr(10), chr(31)))\n"
)
PEAK_BYTES = 1_500_000_000  # a whole question on a real study stays near 600 MB; hostile input must not go far beyond


def measured(env, *args, timeout=120):
    """Exit code, peak resident memory and stderr of a real `vesalius` process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, VESALIUS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    ).stdout
    code, peak, err = out.rstrip("\n").split("\t", 2)
    return int(code), int(peak), err.replace(chr(31), "\n")


def _refused_within_bounds(env, path, expected):
    # 60 s is a bound on a hang or a crawl through endless elements (minutes before), not a speed target.
    code, peak, err = measured(env, "ask", "--study", str(path), "Is there an effusion?", timeout=60)
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and expected in err, err
    assert peak < PEAK_BYTES, f"peak {peak / 1e6:.0f} MB"


def test_devices_and_fifos_are_not_read(cli_env, tmp_path):
    _refused_within_bounds(cli_env, Path("/dev/zero"), "not a regular file")
    fifo = tmp_path / "scan.dcm"
    os.mkfifo(fifo)
    _refused_within_bounds(cli_env, fifo, "not a regular file")  # a hang here would end in the timeout


def test_a_large_file_of_zeros_is_refused_quickly(cli_env, tmp_path):
    zeros = tmp_path / "zeros.dcm"
    with zeros.open("wb") as f:
        f.truncate(256 * 1024**2)
    _refused_within_bounds(cli_env, zeros, "zeros.dcm")


_CHUNK = 16 * 1024**2


def zip_of_zeros(path: Path, members: dict[str, int]) -> None:
    """A zip whose deflated members hold `chunks` x 16 MiB of zeros each. Deflating gigabytes takes seconds per
    GiB; but after a full flush 16 MiB of zeros always deflate to the same block, so each member's deflate stream
    is that block repeated, written into a plain zip (local headers, central directory, end record)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(_CHUNK)) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()
    zeros, crcs = bytes(_CHUNK), {}
    with path.open("wb") as f:
        central = []
        for name, chunks in members.items():
            if chunks not in crcs:
                crc = 0
                for _ in range(chunks):
                    crc = zlib.crc32(zeros, crc)
                crcs[chunks] = crc
            size, packed, encoded = chunks * _CHUNK, chunks * len(block) + len(end), name.encode()
            fields = struct.pack("<HHHHHIIIH", 20, 0, 8, 0, 0x21, crcs[chunks], packed, size, len(encoded))
            central.append((fields, encoded, f.tell()))
            f.write(b"PK\x03\x04" + fields + struct.pack("<H", 0) + encoded)
            for _ in range(chunks):
                f.write(block)
            f.write(end)
        start = f.tell()
        for fields, encoded, offset in central:
            f.write(b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset))
            f.write(encoded)
        count = len(central)
        f.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, f.tell() - start, start, 0))
    with zipfile.ZipFile(path) as archive:  # a well-formed zip that inflates to zeros
        assert {i.filename: i.file_size for i in archive.infolist()} == {n: c * _CHUNK for n, c in members.items()}
        with archive.open(next(iter(members))) as member:
            assert member.read(2 * _CHUNK) == bytes(2 * _CHUNK)


def test_a_zip_bomb_is_refused_within_bounds(cli_env, tmp_path):
    bomb = tmp_path / "bomb.zip"
    zip_of_zeros(bomb, {"slice.dcm": 64})  # 1 GiB of zeros in about 1 MB
    assert bomb.stat().st_size < 4 * 1024**2
    _refused_within_bounds(cli_env, bomb, "bomb.zip")
    many = tmp_path / "many.zip"
    zip_of_zeros(many, {f"{i}.dcm": 16 for i in range(8)})  # eight 256 MiB members: killed after 180 s before
    _refused_within_bounds(cli_env, many, "many.zip")


def test_a_huge_image_is_read_within_the_memory_budget(cli_env, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (10000, 10000), 128).save(big)
    code, peak, err = measured(cli_env, "ask", "--study", str(big), "How is the image quality?")
    assert code == 0, err
    assert peak < PEAK_BYTES, f"peak {peak / 1e6:.0f} MB"


# --- Random input: only exit codes 0 and 2 -----------------------------------------------------------------------


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 40), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


_SLICES: list[bytes] = []


def _dicom(seed: int) -> bytes:
    """One of three slices of a real CT series (written once), so that undamaged members still make a volume."""
    if not _SLICES:
        import tempfile

        from dicom_factory import write_series

        with tempfile.TemporaryDirectory() as folder:
            _SLICES.extend(p.read_bytes() for p in write_series(Path(folder), 3))
    return _SLICES[seed % len(_SLICES)]


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[: max(1, int(len(out) * cut))])


@st.composite
def study_files(draw):
    kind = draw(st.sampled_from(["bytes", "png", "dicom", "zip", "folder"]))
    edits = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12))
    cut = draw(st.floats(0.05, 1.0))
    seed = draw(st.integers(0, 1000))
    if kind == "bytes":
        return kind, [draw(st.binary(min_size=0, max_size=2048))]
    base = _png(seed) if kind == "png" else _dicom(seed)
    if kind in ("zip", "folder"):
        count = draw(st.integers(1, 3))
        damaged = draw(st.integers(0, count))  # some members intact, some damaged
        members = [_dicom(seed + i) if i >= damaged else _mutate(_dicom(seed + i), edits, cut) for i in range(count)]
        return kind, members
    return kind, [_mutate(base, edits, cut)]


RUNAWAY_BYTES = 2_000_000_000  # more than any example may add to the test process's peak memory


@pytest.fixture(scope="module")
def peak_before() -> int:
    """The test process's peak before these examples: earlier tests in the same process (each with its models
    loaded) set it, so a runaway is measured as growth beyond it."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 2_000_000_000)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(study=study_files(), question=st.binary(min_size=0, max_size=64), command=st.sampled_from(["ask", "inspect"]))
def test_random_files_and_questions_exit_0_or_2(cli_env, tmp_path_factory, peak_before, study, question, command):
    folder = tmp_path_factory.mktemp("random")
    kind, members = study
    if kind == "folder":
        target = folder / "series"
        target.mkdir()
        for i, data in enumerate(members):
            (target / f"{i}.dcm").write_bytes(data)
    elif kind == "zip":
        target = folder / "series.zip"
        with zipfile.ZipFile(target, "w") as archive:
            for i, data in enumerate(members):
                archive.writestr(f"{i}.dcm", data)
    else:
        target = folder / "study"
        target.write_bytes(members[0])
    started = time.monotonic()
    if command == "ask":
        result = cli(cli_env, "ask", "--study", str(target), os.fsdecode(question) or "?")
    else:
        result = cli(cli_env, "inspect", "--json", str(target))
    assert time.monotonic() - started < 60  # a hang shows here; typical examples take well under a second
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < peak_before + RUNAWAY_BYTES
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not any(c in result.stdout + result.stderr for c in ESCAPES)
