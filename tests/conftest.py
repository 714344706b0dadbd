"""Shared fixtures. Everything runs for real: pydicom, FAISS, SQLite, the embedding model, and (in
test_vllm_serving.py) a vLLM server. Data from ../shared/data is used where present; tests that need it skip,
saying so, where it is absent (a user's machine)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from pydicom.data import get_testdata_file

from vesalius.agent.config import Settings, load_settings
from vesalius.retrieval import bundled_knowledge_path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA}, which is absent on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ct_path() -> Path:
    return Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def mr_path() -> Path:
    return Path(get_testdata_file("MR_small.dcm"))


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory) -> Path:
    """One knowledge-index cache for the session: building it once is enough to test building."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def small_imaging(tmp_path):
    """The bundled imaging knowledge cut to its first n concepts: a knowledge base that builds in a second."""

    def make(n: int = 6) -> Path:
        data = json.loads(bundled_knowledge_path().read_text())
        data["concepts"] = data["concepts"][:n]
        path = tmp_path / f"imaging{n}.json"
        path.write_text(json.dumps(data))
        return path

    return make


@pytest.fixture
def make_settings(tmp_path, index_cache):
    def make(**overrides) -> Settings:
        env = {"HOME": str(tmp_path / "home")}
        values = {"cache_dir": index_cache, "data_dir": tmp_path / "data"} | overrides
        return load_settings(env, **values)

    return make


@pytest.fixture
def cli_env(tmp_path, index_cache) -> dict[str, str]:
    """Environment for `vesalius` subprocesses: private home, shared index cache, no model server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESALIUS_")}
    env.update(
        HOME=str(tmp_path / "home"),
        VESALIUS_CACHE_DIR=str(index_cache),
        VESALIUS_DATA_DIR=str(tmp_path / "data"),
    )
    return env


class CliRun(NamedTuple):
    """What a `vesalius` run left: named like `subprocess.CompletedProcess`, so tests read the same either way."""

    returncode: int
    stdout: str
    stderr: str


def invoke_cli(env: dict[str, str], *args, input: str | bytes | None = None) -> CliRun:
    """Run the `vesalius` command line in this process (click's CliRunner) with exactly `env`'s VESALIUS_*
    variables: stdin from `input`, stdout and stderr captured apart, neither a terminal, as in a pipe.

    The command's user errors are exit codes, as in a process; an exception that escapes it is raised here with
    its traceback (the CLI reports bugs in one line: VESALIUS_DEBUG=1 in the test run's environment lets them out)."""
    from click.testing import CliRunner

    from vesalius.cli import main

    keep = {k: os.environ[k] for k in ("VESALIUS_DEBUG",) if k in os.environ}
    leaking = {k: None for k in os.environ if k.startswith("VESALIUS_") and k not in env}
    result = CliRunner().invoke(
        main, [str(a) for a in args], input=input, env=leaking | dict(env) | keep, prog_name="vesalius"
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception.with_traceback(result.exc_info[2] if result.exc_info else None)
    return CliRun(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(cli_env):
    """`cli(*args, env=None, input=None)`: `vesalius *args` in this process, in `cli_env` (or `env`), which
    saves a process start-up (seconds of imports) per call. Keep real processes for what needs one: the entry
    point, signals, a broken pipe, concurrency between processes, and time or memory measured on a child."""

    def run(*args, env: dict[str, str] | None = None, input: str | bytes | None = None) -> CliRun:
        return invoke_cli(cli_env if env is None else env, *args, input=input)

    return run


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound and released: the kernel will not hand it out again at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback, started once for every test that needs one."""
    import shutil
    import tempfile

    from postgres_server import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="vesalius-pg-"))
    root.chmod(0o755)  # the cluster folder inside is the postgres user's alone
    server = PostgresServer(root / "cluster")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A real vLLM server with a tiny random Gemma3, started once for every test that needs one."""
    from vllm_server import serve

    yield from serve(tmp_path_factory)


@pytest.fixture
def train_here(cli):
    """`vesalius train` in this process; the global torch settings a training run makes are put back afterwards."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()

    def train(model: str, out, data, *extra: str):
        return cli("train", model, "--data", data, "--out", out, *extra)

    yield train
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
