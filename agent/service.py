"""`Vesalius`: the agent behind one small API. Threads persist in SQLite through LangGraph's checkpointer."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Self

from langgraph.checkpoint.sqlite import SqliteSaver

from agent.answer import Answer
from agent.config import Settings
from agent.deps import Deps
from agent.errors import AgentError
from agent.graph import build_graph
from agent.router import plan_route
from vision.slices import choose_slices
from vision.windows import parse_window

MAX_QUESTION_CHARS = 4000


class Vesalius:
    """Use as a context manager: it holds the conversation database open."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deps = Deps.from_settings(settings)
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(settings.threads_db, check_same_thread=False)
            saver = SqliteSaver(self._conn)
            saver.setup()
        except (sqlite3.Error, OSError) as exc:
            raise AgentError(
                f"cannot open the conversation store {settings.threads_db} ({exc})",
                "Check VESALIUS_DATA_DIR points to a writable folder, or move the damaged file aside",
            ) from exc
        self.graph = build_graph(self.deps, saver)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.deps.close()
        self._conn.close()

    def thread(self, thread_id: str) -> dict:
        """The stored state of a conversation ({} when there is none)."""
        return dict(self.graph.get_state({"configurable": {"thread_id": thread_id}}).values or {})

    def ask(
        self,
        question: str,
        study: str | Path | None = None,
        thread_id: str | None = None,
        modality: str | None = None,
        heatmap_dir: Path | None = None,
        series: int | None = None,
        window: str | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer `question` about `study` (or the thread's study). Everything is checked before the thread is touched.

        `series` picks a series by number in a folder, zip or DICOMDIR; `window` is a preset name, "auto" or
        "center,width". Both stay with the thread. `on_step` is called with each graph node's name as it finishes.
        """
        question = " ".join(question.split())
        if not question:
            raise AgentError(
                "the question is empty", 'Ask something, e.g. vesalius ask --study scan.dcm "Is there an effusion?"'
            )
        if len(question) > MAX_QUESTION_CHARS:
            raise AgentError(f"the question is {len(question)} characters long", f"Keep it under {MAX_QUESTION_CHARS}")
        if thread_id is not None:
            known = self.thread(thread_id)
            if not known and study is None:
                raise AgentError(
                    f"there is no conversation {thread_id!r} in {self.settings.threads_db}",
                    "Check the id, or start a new conversation with --study PATH",
                )
            if study is None:  # a follow-up keeps the thread's study and what it was opened with
                study, modality = known["study_path"], modality or known.get("modality")
                series = series if series is not None else known.get("series")
                window = window or known.get("window")
        elif study is None:
            raise AgentError(
                "no study given",
                "Pass --study PATH (a DICOM file, a folder or zip of slices, a DICOMDIR, or a PNG/JPEG/TIFF)",
            )
        study_path = str(Path(study).resolve())
        # Everything that can fail on the input fails here, with a StudyError, before the thread is touched.
        loaded = self.deps.study(study_path, modality, series)
        if window:
            parse_window(window)
        if requested := plan_route(question, {}).images:
            choose_slices(loaded, count=1, requested=requested)
        thread_id = thread_id or uuid.uuid4().hex[:12]
        inputs = {
            "thread_id": thread_id,
            "question": question,
            "study_path": study_path,
            "modality": modality,
            "series": series,
            "window": window,
            "heatmap_dir": str(heatmap_dir) if heatmap_dir else None,
        }
        config = {"configurable": {"thread_id": thread_id}}
        for mode, chunk in self.graph.stream(inputs, config, stream_mode=["updates", "values"]):
            if mode == "updates" and on_step:
                for node in chunk:
                    on_step(node)
            elif mode == "values":
                state = chunk
        return Answer.model_validate(state["answer"])
