"""Conversations in PostgreSQL (VESALIUS_DB_URL), for several processes or machines sharing the same threads.

The same two guarantees as the SQLite store: a turn runs in one transaction, committed only when it succeeded, and
turns on one thread are serialised by a transaction-level advisory lock on the thread's id, which every process
and worker connected to the database respects and which the server releases if a process dies mid-turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from vesalius.agent.conversations import THREAD_ID, bad_thread_id, busy, committed, strict_serde
from vesalius.agent.errors import AgentError

_CONNECT_TIMEOUT_S = 10
_SETUP_LOCK = 0x7665_7361  # "vesa": one process at a time runs the checkpointer's migrations


class PostgresStore:
    errors = (psycopg.Error,)

    def __init__(self, url: str, wait_s: float):
        self.url, self.wait_s = url, wait_s
        try:
            self.conn = self._connect(autocommit=True)
            self.reader = PostgresSaver(self.conn, serde=strict_serde())
            self.conn.execute("SELECT pg_advisory_lock(%s)", [_SETUP_LOCK])
            try:
                self.reader.setup()
            finally:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", [_SETUP_LOCK])
        except psycopg.Error as exc:
            raise self.failure(exc) from exc

    @property
    def where(self) -> str:
        """The database, named without its password."""
        try:
            info = conninfo_to_dict(self.url)
        except psycopg.Error:
            return "the PostgreSQL database of VESALIUS_DB_URL"
        return f"PostgreSQL {info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def _connect(self, autocommit: bool) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url,
            autocommit=autocommit,
            prepare_threshold=0,
            row_factory=dict_row,
            connect_timeout=_CONNECT_TIMEOUT_S,
        )

    def failure(self, exc: BaseException) -> AgentError:
        reason = " ".join(str(exc).split())[:300]
        return AgentError(
            f"the conversation store {self.where} cannot be used ({type(exc).__name__}: {reason})",
            "Check that the server is up and VESALIUS_DB_URL names it (postgresql://user:password@host:port/db)",
        )

    @contextmanager
    def turn(self, thread_id: str) -> Iterator[PostgresSaver]:
        """A checkpointer for one turn of `thread_id`, held exclusively; committed only if the block succeeds."""
        if not THREAD_ID.fullmatch(thread_id):
            raise bad_thread_id(thread_id)
        try:
            conn = self._connect(autocommit=False)
        except psycopg.Error as exc:
            raise self.failure(exc) from exc
        with committed(conn, self):
            try:
                # Both only for this transaction: the lock goes with the commit, or with the connection if we die.
                conn.execute(f"SET LOCAL lock_timeout = '{max(1, int(self.wait_s * 1000))}ms'")
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"vesalius-thread:{thread_id}"])
            except psycopg.errors.LockNotAvailable:
                raise busy(thread_id, self.wait_s) from None
            yield PostgresSaver(conn, serde=strict_serde())

    def close(self) -> None:
        self.conn.close()
