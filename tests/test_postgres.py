"""Conversations in a real PostgreSQL server (VESALIUS_DB_URL): shared by processes and server workers, kept across
a database restart, one turn at a time per thread, and read back with strict deserialisation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from http_server import TOKEN, Server
from pydicom.data import get_testdata_file

CT = get_testdata_file("CT_small.dcm")
VESALIUS = str(Path(sys.executable).parent / "vesalius")


@pytest.fixture
def pg_env(cli_env, postgres, tmp_path):
    import psycopg

    name = f"t_{tmp_path.name.lower().replace('-', '_')[:40]}"  # a database per test: no test sees another's threads
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cli_env | {"VESALIUS_DB_URL": postgres.url.rsplit("/", 1)[0] + "/" + name}


def _ask(env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [VESALIUS, "ask", "--json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _answer(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def test_a_thread_continues_in_another_process_and_across_a_restart(pg_env, postgres, tmp_path):
    first = _answer(_ask(pg_env, "--study", CT, "Is there a pleural effusion?"))
    thread = first["thread_id"]
    assert not (tmp_path / "data" / "threads.sqlite").exists()  # nothing went to SQLite
    second = _answer(_ask(pg_env, "--thread", thread, "How sure is that?"))
    assert second["turn"] == 2
    postgres.restart()
    third = _answer(_ask(pg_env, "--thread", thread, "What should happen next?"))
    assert third["turn"] == 3 and third["study"]["study_id"] == first["study"]["study_id"]


def test_turns_on_one_thread_from_two_processes_are_serialised(pg_env):
    thread = _answer(_ask(pg_env, "--study", CT, "Is there a pleural effusion?"))["thread_id"]
    both = [_ask(pg_env, "--thread", thread, q) for q in ("Is this normal?", "Which window was used?")]
    turns = sorted(_answer(p)["turn"] for p in both)
    assert turns == [2, 3]  # never two turns 2, never a lost turn
    from vesalius.agent.config import load_settings
    from vesalius.agent.service import Vesalius

    with Vesalius(load_settings(pg_env)) as agent:
        assert [t.turn for t in agent.history(thread)] == [1, 2, 3]


def test_an_unreachable_database_is_one_clear_line(cli_env):
    env = cli_env | {"VESALIUS_DB_URL": "postgresql://nobody:secret-password@127.0.0.1:1/none"}
    argv = [VESALIUS, "ask", "--study", CT, "Is this normal?"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "PostgreSQL 127.0.0.1:1/none cannot be used" in done.stderr
    assert "secret-password" not in done.stderr  # the URL's password is never shown


def test_two_server_workers_share_threads_through_postgres(pg_env, tmp_path, index_cache):
    shared = {"VESALIUS_DB_URL": pg_env["VESALIUS_DB_URL"], "VESALIUS_API_TOKEN": TOKEN}
    # Stateless workers: the same data folder (study store, de-identification key) and the same database.
    data = {"VESALIUS_DATA_DIR": str(tmp_path / "shared-data")}
    one = Server(tmp_path / "one", index_cache, **shared, **data)
    two = Server(tmp_path / "two", index_cache, **shared, **data)
    try:
        with one.client() as a, two.client() as b:
            study = a.post("/api/studies", files=[("files", ("ct.dcm", Path(CT).read_bytes()))]).json()["study_id"]
            thread = a.post("/api/threads", json={"study_id": study}).json()["thread_id"]
            assert a.post(f"/api/threads/{thread}/messages", json={"question": "Is this normal?"}).json()["turn"] == 1
            follow = b.post(f"/api/threads/{thread}/messages", json={"question": "How sure is that?"})
            assert follow.status_code == 200, follow.text
            assert follow.json()["turn"] == 2
            assert [t["turn"] for t in a.get(f"/api/threads/{thread}").json()["turns"]] == [1, 2]
            assert b.delete(f"/api/threads/{thread}").status_code == 204
            assert a.get(f"/api/threads/{thread}").status_code == 404
    finally:
        one.stop()
        two.stop()


def test_checkpoints_are_read_back_strictly():
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from vesalius.agent.answer import ModelUse
    from vesalius.agent.conversations import strict_serde

    written = JsonPlusSerializer(allowed_msgpack_modules=True).dumps_typed({"m": ModelUse(used=True, name="x")})
    read = strict_serde().loads_typed(written)
    assert type(read["m"]) is dict and read["m"]["name"] == "x"  # a class named in a row is never instantiated
