"""`Vesalius`: the agent behind one small API. Threads persist in SQLite through LangGraph's checkpointer."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Self

from vesalius.agent.answer import Answer
from vesalius.agent.config import Settings
from vesalius.agent.conversations import ConversationStore
from vesalius.agent.deps import Deps
from vesalius.agent.errors import AgentError
from vesalius.agent.graph import build_graph
from vesalius.agent.router import plan_route
from vesalius.agent.user_text import user_text
from vesalius.vision.slices import choose_slices
from vesalius.vision.windows import parse_window


class Vesalius:
    """Use as a context manager: it holds the conversation database open."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deps = Deps.from_settings(settings)
        self.store = ConversationStore(settings.threads_db, settings.thread_wait_s)
        self.graph = build_graph(self.deps, self.store.reader)  # reads threads; each turn writes through its own

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.deps.close()
        self.store.close()

    def thread(self, thread_id: str) -> dict:
        """The stored state of a conversation ({} when there is none)."""
        try:
            return dict(self.graph.get_state({"configurable": {"thread_id": thread_id}}).values or {})
        except sqlite3.Error as exc:
            raise self.store.failure(exc) from exc

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
        """Answer `question` about `study` (or the thread's study). Everything is checked before the thread is touched,
        and the turn is stored whole or not at all; turns on one thread run one at a time.

        `series` picks a series by number in a folder, zip or DICOMDIR; `window` is a preset name, "auto" or
        "center,width". Both stay with the thread. `on_step` is called with each graph node's name as it finishes.
        """
        question = user_text(question)
        if study is not None:
            study = user_path(study, "study path")
        heatmaps = writable_folder(
            heatmap_dir or self.settings.cache_dir / "heatmaps",
            "the heatmap folder" if heatmap_dir else "the cache folder (VESALIUS_CACHE_DIR)",
        )
        if thread_id is None and study is None:
            raise AgentError(
                "no study given",
                "Pass --study PATH (a DICOM file, a folder or zip of slices, a DICOMDIR, or a PNG/JPEG/TIFF)",
            )
        new_thread = thread_id is None
        thread_id = thread_id or uuid.uuid4().hex[:12]
        with self.store.turn(thread_id) as saver:
            known = {} if new_thread else self.thread(thread_id)
            follow_up = study is None
            if follow_up:  # a follow-up keeps the thread's study and what it was opened with
                if not known:
                    raise AgentError(
                        f"there is no conversation {thread_id!r} in {self.settings.threads_db}",
                        "Check the id, or start a new conversation with --study PATH",
                    )
                study, modality = known["study_path"], modality or known.get("modality")
                series = series if series is not None else known.get("series")
                window = window or known.get("window")
            study_path = str(Path(study).resolve())
            # Everything that can fail on the input fails here, with a StudyError, before the thread is written.
            loaded = self.deps.study(study_path, modality, series, fresh=True)
            if follow_up:
                _same_study(known, loaded.summary.study_id, study_path, thread_id)
            if window:
                parse_window(window)
            if requested := plan_route(question, {}).images:
                choose_slices(loaded, count=1, requested=requested)
            inputs = {
                "thread_id": thread_id,
                "question": question,
                "study_path": study_path,
                "modality": modality,
                "series": series,
                "window": window,
                "heatmap_dir": str(heatmaps) if heatmap_dir else None,
            }
            config = {"configurable": {"thread_id": thread_id}}
            # Checkpoints are written once, when the graph exits, inside the turn's transaction.
            graph = build_graph(self.deps, saver)
            for mode, chunk in graph.stream(inputs, config, stream_mode=["updates", "values"], durability="exit"):
                if mode == "updates" and on_step:
                    for node in chunk:
                        on_step(node)
                elif mode == "values":
                    state = chunk
            return Answer.model_validate(state["answer"])


def _same_study(known: dict, study_id: str, path: str, thread_id: str) -> None:
    """A follow-up re-reads the study from its path: answering about other pixels under the same name would be a
    silent wrong answer."""
    before = (known.get("study") or {}).get("study_id")
    if before and before != study_id:
        raise AgentError(
            f"the study of conversation {thread_id} has changed since it was opened: {path} now holds other "
            f"content (content id {study_id}, was {before})",
            "Start a new conversation with --study PATH for the new content, or restore the original file",
        )


def user_path(path: str | Path, what: str) -> Path:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise AgentError(
            f"the {what} has bytes that are not UTF-8 ({str(path).encode('utf-8', 'replace').decode()!r})",
            "Rename the file or folder with a UTF-8 name",
        ) from None
    return Path(path)


def writable_folder(path: Path, what: str) -> Path:
    """`path` made and proven writable before any work, so writing a picture cannot fail after the tools ran."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise AgentError(
            f"cannot write to {what} {path}: {exc.strerror or exc}", "Choose a folder you can write to"
        ) from exc
    return path
