"""The conversation store (threads.sqlite, LangGraph's SQLite checkpointer) with two guarantees the checkpointer
alone does not give: a turn is stored whole or not at all, and one thread answers one question at a time.
With VESALIUS_DB_URL the store is PostgreSQL instead (`postgres_store`), with the same guarantees.

A turn runs on its own connection inside one transaction that commits only when the turn succeeded, so a
failed question (bad model output, a bug, a kill) leaves no checkpoint behind. A lock file per thread serialises
turns across processes and threads: two `ask --thread SAME` at once become turns n and n+1, never two turns n.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from filelock import FileLock, Timeout
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from vesalius.agent.errors import AgentError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from vesalius.agent.config import Settings

THREAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BUSY_TIMEOUT_S = 30.0  # other processes commit a turn in milliseconds; this only rides out a busy disk


class Store(Protocol):
    """Where conversations live: `reader` reads threads, `turn` writes one turn of one thread, whole or not at all."""

    reader: BaseCheckpointSaver
    errors: tuple[type[BaseException], ...]  # what the database raises, for `failure`
    where: str

    def turn(self, thread_id: str) -> AbstractContextManager[BaseCheckpointSaver]: ...

    def failure(self, exc: BaseException) -> AgentError: ...

    def close(self) -> None: ...


def open_store(settings: Settings) -> Store:
    if settings.db_url:
        from vesalius.agent.postgres_store import PostgresStore

        return PostgresStore(settings.db_url, settings.thread_wait_s)
    return ConversationStore(settings.threads_db, settings.thread_wait_s)


def strict_serde() -> JsonPlusSerializer:
    """Checkpoints are read back with msgpack restricted to plain types: a row someone wrote into the database
    cannot make this process import and call arbitrary code. Our state is JSON-friendly, so nothing is lost."""
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def bad_thread_id(thread_id: str) -> AgentError:
    return AgentError(
        f"{thread_id[:80]!r} is not a conversation id",
        "Use the id printed when the conversation started (letters, digits, '-' and '_')",
    )


@contextmanager
def committed(conn: Any, store: Store) -> Iterator[None]:
    """The block's writes on `conn`, committed if it succeeds and rolled back if not; then `conn` is closed. A
    database error becomes the store's one-line failure."""
    try:
        yield
        conn.commit()
    except store.errors as exc:
        conn.rollback()
        raise store.failure(exc) from exc
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def busy(thread_id: str, wait_s: float) -> AgentError:
    return AgentError(
        f"conversation {thread_id} is still answering another question (waited {wait_s:g} s)",
        "Ask again when that answer is in; VESALIUS_THREAD_WAIT_S sets how long to wait",
    )


class _TurnSaver(SqliteSaver):
    """Writes without committing: the turn's owner commits or rolls back the whole turn at once."""

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()


class ConversationStore:
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, wait_s: float):
        self.path, self.wait_s = path, wait_s
        self.locks = path.parent / "locks"
        if path.exists() and not path.is_file():  # SQLite would block for ever on a FIFO, and read /dev/zero
            raise self.failure(OSError(f"{path.name} is not a regular file"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.locks.mkdir(exist_ok=True)
            # One process at a time checks and sets up the store: switching a new file to WAL can be refused
            # as "locked" while another process is creating the same tables.
            with FileLock(self.locks / ".setup.lock", timeout=_BUSY_TIMEOUT_S):
                self.conn = _connect(path)
                try:
                    _check_intact(self.conn, path)
                    self.reader = SqliteSaver(self.conn, serde=strict_serde())
                    self.reader.setup()
                except BaseException:
                    self.conn.close()
                    raise
        except Timeout:
            raise self.failure(
                TimeoutError(f"another process held the store's setup for {_BUSY_TIMEOUT_S:g} s")
            ) from None
        except (sqlite3.Error, OSError) as exc:
            raise self.failure(exc) from exc

    @property
    def where(self) -> str:
        return str(self.path)

    def failure(self, exc: BaseException) -> AgentError:
        return AgentError(
            f"the conversation store {self.path} cannot be used ({type(exc).__name__}: {exc})",
            "Check that VESALIUS_DATA_DIR is a writable folder; if the file is damaged, move it aside "
            "(a new one is made, and earlier conversations stay in the moved file)",
        )

    @contextmanager
    def turn(self, thread_id: str) -> Iterator[SqliteSaver]:
        """A checkpointer for one turn of `thread_id`, held exclusively; committed only if the block succeeds."""
        if not THREAD_ID.fullmatch(thread_id):
            raise bad_thread_id(thread_id)
        lock = FileLock(self.locks / f"{thread_id}.lock", timeout=self.wait_s)
        try:
            lock.acquire()
        except Timeout:
            raise busy(thread_id, self.wait_s) from None
        except OSError as exc:
            raise self.failure(exc) from exc
        try:
            try:
                conn = _connect(self.path)
            except sqlite3.Error as exc:
                raise self.failure(exc) from exc
            saver = _TurnSaver(conn, serde=strict_serde())
            saver.is_setup = True  # the tables exist: setup() would commit on its own
            with committed(conn, self):
                yield saver
        finally:
            lock.release()

    def close(self) -> None:
        self.conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """A damaged store is refused before anything is written into it (SQLite would keep writing around the damage)."""
    rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    if problems:
        raise sqlite3.DatabaseError(f"integrity check failed: {'; '.join(problems)[:300]}")
