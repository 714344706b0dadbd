"""Conversations under pressure: concurrent turns on one thread, failed turns, a damaged store, a study that
changed on disk between turns, and two first questions racing to build the starter knowledge base. A race between
processes is one between real `vesalius` processes; the command line's other checks run in this process."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesalius.agent.errors import AgentError
from vesalius.agent.service import Vesalius

VESALIUS = str(Path(sys.executable).with_name("vesalius"))


def _start(env, *args):
    return subprocess.Popen(
        [VESALIUS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )


def _rows(db: Path, thread: str) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        checkpoints = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread,)).fetchone()[0]
        writes = conn.execute("SELECT count(*) FROM writes WHERE thread_id = ?", (thread,)).fetchone()[0]
    return checkpoints, writes


def test_concurrent_processes_on_one_thread_lose_no_turn(cli, cli_env, ct_path):
    first = cli("ask", "--json", "--study", ct_path, "Is there an effusion?")  # the thread, before the race
    assert first.returncode == 0, first.stderr
    thread = json.loads(first.stdout)["thread_id"]
    questions = [f"What is the attenuation of region {i}?" for i in range(3)]
    procs = [_start(cli_env, "ask", "--json", "--thread", thread, q) for q in questions]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    turns = sorted(json.loads(out)["turn"] for out, _ in outs)
    assert turns == [2, 3, 4]
    with agent_over(cli_env) as agent:
        history = agent.thread(thread)["history"]
    assert len(history) == 4
    assert sorted(h["question"] for h in history[1:]) == sorted(questions)


def agent_over(env: dict[str, str]) -> Vesalius:
    """An agent in this process over the same folders a CLI environment uses (close it with `with`)."""
    from vesalius.agent.config import load_settings

    return Vesalius(load_settings(env))


def test_concurrent_clients_of_one_agent_lose_no_turn(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        thread = agent.ask("Is there an effusion?", study=ct_path).thread_id
        turns, errors = [], []

        def client(i: int) -> None:
            try:
                turns.append(agent.ask(f"How noisy is part {i}?", thread_id=thread).turn)
            except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                errors.append(exc)

        clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=300)
        assert not errors, errors
        assert sorted(turns) == [2, 3, 4, 5]
        assert len(agent.thread(thread)["history"]) == 5


def test_a_busy_thread_is_refused_after_the_wait(make_settings, ct_path):
    from filelock import FileLock

    settings = make_settings(thread_wait_s=0.2)
    with Vesalius(settings) as agent:
        thread = agent.ask("Is there an effusion?", study=ct_path).thread_id
        busy = FileLock(settings.data_dir / "locks" / f"{thread}.lock")  # another client's turn in progress
        with busy, pytest.raises(AgentError, match="still answering another question"):
            agent.ask("And now?", thread_id=thread)
        assert len(agent.thread(thread)["history"]) == 1


def test_a_failed_turn_stores_nothing(make_settings, ct_path, monkeypatch):
    settings = make_settings()
    with Vesalius(settings) as agent:
        thread = agent.ask("Is there an effusion?", study=ct_path).thread_id
        before = _rows(settings.threads_db, thread)

        def broken(*args):
            raise RuntimeError("a bug while composing")

        monkeypatch.setattr("vesalius.agent.nodes.compose.model_alerts", broken)  # looked up as compose runs
        with pytest.raises(RuntimeError):
            agent.ask("What does that mean?", thread_id=thread)
        assert _rows(settings.threads_db, thread) == before  # no rows on the existing thread
        with pytest.raises(RuntimeError):
            agent.ask("A new question", study=ct_path, thread_id="orphan-check")
        assert _rows(settings.threads_db, "orphan-check") == (0, 0)  # and no orphan thread
        monkeypatch.undo()
        assert agent.ask("What does that mean?", thread_id=thread).turn == 2


def test_a_damaged_store_is_refused_and_left_as_it_was(cli, cli_env, ct_path, tmp_path):
    data = Path(cli_env["VESALIUS_DATA_DIR"])
    with agent_over(cli_env) as agent:
        for i in range(3):
            agent.ask(f"Is there an effusion {i}?", study=ct_path)
    db = data / "threads.sqlite"
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 4 * page
    raw[2 * page : 2 * page + 64] = b"\xa5" * 64  # a b-tree page header overwritten
    db.write_bytes(bytes(raw))
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    p = cli("ask", "--study", ct_path, "Is there an effusion?")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("error: the conversation store") and "move it aside" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_follow_up_notices_the_study_changed(make_settings, tmp_path):
    path = tmp_path / "film.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    settings = make_settings()
    with Vesalius(settings) as agent:
        thread = agent.ask("How is the image quality?", study=path).thread_id
        assert agent.ask("And the noise?", thread_id=thread).turn == 2  # unchanged: fine
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    with Vesalius(settings) as agent:  # a later process
        with pytest.raises(AgentError, match="has changed since it was opened"):
            agent.ask("And now?", thread_id=thread)
        assert len(agent.thread(thread)["history"]) == 2
    with Vesalius(settings) as agent:  # the same process, after the change
        thread = agent.ask("How is the image quality?", study=path).thread_id
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
        with pytest.raises(AgentError, match="has changed since it was opened"):
            agent.ask("And now?", thread_id=thread)


def test_two_first_questions_share_one_starter_build(cli_env, ct_path, tmp_path):
    env = cli_env | {"VESALIUS_CACHE_DIR": str(tmp_path / "empty-cache")}
    procs = [_start(env, "ask", "--study", str(ct_path), f"Is there an effusion {i}?") for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    builds = list((tmp_path / "empty-cache" / "kb" / "builds").iterdir())
    assert len(builds) == 1 and (builds[0] / "manifest.json").exists()
