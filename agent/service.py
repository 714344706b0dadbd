"""`Vesalius`: the agent and every command behind one small API. Threads persist in SQLite through LangGraph's
checkpointer; the command line only parses and presents what these methods return."""

from __future__ import annotations

import io
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from vesalius.agent.answer import Answer, Turn, clarification
from vesalius.agent.config import Settings, load_settings
from vesalius.agent.context import ClinicalContext, clinical_context
from vesalius.agent.deps import Deps
from vesalius.agent.errors import AgentError
from vesalius.agent.router import plan_route
from vesalius.agent.state import STATE_VERSION, NewerStateError, upgrade
from vesalius.agent.trace import TurnTrace, turn_trace
from vesalius.agent.user_text import user_text
from vesalius.vision.slices import choose_slices
from vesalius.vision.windows import auto_window, parse_window

if TYPE_CHECKING:  # each loads with the first call that needs it
    from vesalius.agent.batch import ImageRecord
    from vesalius.agent.conversations import Store
    from vesalius.agent.findings import Coded, Findings
    from vesalius.agent.inspect import Inspection
    from vesalius.retrieval.build import BuildOptions, BuildReport
    from vesalius.retrieval.concepts import Concept
    from vesalius.retrieval.search import Hit, KnowledgeBase, Mode
    from vesalius.vision.tools.registry import ToolDeclaration


class Vesalius:
    """Vesalius as a library: questions about studies, and every command's work, behind one object.

        with Vesalius() as v:  # settings from the environment and the config file (load_settings)
            answer = v.ask("Is there a pleural effusion?", study="ct.dcm")
            follow_up = v.ask("How sure is that?", thread_id=answer.thread_id)

    Parts load on first use (the tools and their models, the knowledge base, the conversation store), so an
    instance that only inspects a study never opens the store, and one that only looks up a code never loads
    torch. One instance may serve many threads at once; use it as a context manager, or call `close`.
    """

    def __init__(self, settings: Settings | None = None):
        self.settings = settings if settings is not None else load_settings()
        self._deps: Deps | None = None
        self._store: Store | None = None
        self._graph: Any = None
        self._opening = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._deps is not None:
            self._deps.close()
        if self._store is not None:
            self._store.close()

    @property
    def deps(self) -> Deps:
        with self._opening:
            if self._deps is None:
                self._deps = Deps.from_settings(self.settings)
            return self._deps

    @property
    def store(self) -> Store:
        deps = self.deps
        with self._opening:
            if self._store is None:
                from vesalius.agent.conversations import open_store
                from vesalius.agent.graph import build_graph

                self._store = open_store(self.settings)
                self._graph = build_graph(deps, self._store.reader)  # reads threads; each turn writes its own
            return self._store

    # -- conversations ------------------------------------------------------------------------------------------

    def thread(self, thread_id: str) -> dict:
        """The stored state of a conversation, in the current layout ({} when there is none)."""
        return self._upgraded(thread_id, self._stored(thread_id))

    def _stored(self, thread_id: str) -> dict:
        store = self.store
        try:
            return dict(self._graph.get_state({"configurable": {"thread_id": thread_id}}).values or {})
        except store.errors as exc:
            raise store.failure(exc) from exc

    @staticmethod
    def _upgraded(thread_id: str, values: dict) -> dict:
        try:
            return upgrade(values)
        except NewerStateError as exc:
            raise AgentError(
                f"conversation {thread_id} was stored by a newer Vesalius (state version {exc.version}, this one "
                f"reads up to {STATE_VERSION})",
                "Upgrade Vesalius to continue it, or start a new conversation",
            ) from None

    def traces(self, thread_id: str) -> list[TurnTrace]:
        """What happened in each turn: step times, route, tools, model use and prompt ([] when there is none)."""
        return [TurnTrace.model_validate(t) for t in self.thread(thread_id).get("traces") or []]

    def history(self, thread_id: str) -> list[Turn]:
        """The finished turns of a conversation, first to last ([] when there is none)."""
        return [Turn.model_validate(turn) for turn in self.thread(thread_id).get("history") or []]

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
        audience: Audience | None = None,
        on_token: Callable[[str], None] | None = None,
        prior: str | Path | None = None,
        context: str | None = None,
    ) -> Answer:
        """Answer `question` about `study` (or the thread's study). Everything is checked before the thread is touched,
        and the turn is stored whole or not at all; turns on one thread run one at a time.

        `series` picks a series by number in a folder, zip or DICOMDIR; `window` is a preset name, "auto" or
        "center,width"; `audience` answers for a clinician or a patient whatever the question's wording. All three
        stay with the thread. `on_step` is called with each graph node's name as it finishes, `on_token` with each
        piece of the model's text as the model server streams it (the answer itself comes whole at the end).

        A second study in a thread (`study` with `thread_id`), or `prior` given, makes the earlier one the prior:
        this turn, and any later one that asks what changed, compares the two tool by tool. `context` is clinical
        context (history, indication, an earlier report as text): de-identified here, before anything keeps or sends
        it, and kept by the thread until new context replaces it.
        """
        question = user_text(question)
        if study is not None:
            study = user_path(study, "study path")
        if prior is not None:
            prior = user_path(prior, "prior study path")
        heatmaps = writable_folder(
            heatmap_dir or self.settings.cache_dir / "heatmaps",
            "the heatmap folder" if heatmap_dir else "the cache folder (VESALIUS_CACHE_DIR)",
        )
        given = clinical_context(context).model_dump() if context is not None else None
        if prior is not None and study is None:
            raise AgentError("a prior study needs a current one", "Pass --study PATH with --prior PATH")
        new_thread = thread_id is None
        thread_id = thread_id or uuid.uuid4().hex[:12]
        from langgraph.types import Command, Overwrite

        with self.store.turn(thread_id) as saver:
            stored = {} if new_thread else self._stored(thread_id)
            known = self._upgraded(thread_id, stored)
            follow_up = study is None and not new_thread
            if follow_up:  # a follow-up keeps the thread's study and what it was opened with
                if not known:
                    raise AgentError(
                        f"there is no conversation {thread_id!r} in {self.store.where}",
                        "Check the id, or start a new conversation with --study PATH",
                    )
                study, modality = known.get("study_path"), modality or known.get("modality")
                series = series if series is not None else known.get("series")
                window = window or known.get("window")
                audience = audience or known.get("audience")
            elif known:
                audience = audience or known.get("audience")  # a new study in the thread, for the same reader
            # A thread without a study answers questions about medicine from the knowledge base; one may join later.
            study_path = str(Path(study).resolve()) if study is not None else None
            # Everything that can fail on the input fails here, with a StudyError, before the thread is written.
            loaded = self.deps.study(study_path, modality, series, fresh=True) if study_path else None
            if follow_up and loaded is not None and study_path:
                _same_study((known.get("study") or {}).get("study_id"), loaded.summary.study_id, study_path, thread_id)
            earlier = _prior(known, loaded.summary.study_id) if loaded is not None and not follow_up else None
            if prior is not None:
                prior_path = str(Path(prior).resolve())
                earlier = {
                    "path": prior_path,
                    "modality": modality,
                    "series": None,
                    "study_id": self.deps.study(prior_path, modality, None, fresh=True).summary.study_id,
                }
            if window:
                parse_window(window)
            if loaded is not None and (requested := plan_route(question, {}).images):
                choose_slices(loaded, count=1, requested=requested)
            inputs = {
                **_thread_values(thread_id, study_path, modality, series, window, audience),
                "question": question,
                "heatmap_dir": str(heatmaps) if heatmap_dir else None,
                "compare_now": earlier is not None,
                **({"context": given} if given is not None else {}),
                **({"prior": earlier} if earlier is not None else {}),
            }
            if known.get("history") and stored.get("state_version") != STATE_VERSION:
                # This turn stores the thread in the current layout; the history channel only appends otherwise.
                inputs["history"] = Overwrite(known["history"])
            config = {"configurable": {"thread_id": thread_id, "stream_tokens": on_token is not None}}
            # Checkpoints are written once, when the graph exits, inside the turn's transaction.
            graph = self._graph.copy({"checkpointer": saver})  # the compiled graph, writing through this turn
            waiting = follow_up and bool(graph.get_state(config).interrupts)
            # A thread waiting on a clarifying question takes this message as its answer and goes on from there.
            run: Any = Command(resume=question) if waiting else inputs
            modes = ["updates", "values", "custom"]
            started = last = time.perf_counter()
            steps: list[tuple[str, float]] = []
            asked: dict[str, Any] | None = None
            for mode, chunk in graph.stream(run, config, stream_mode=modes, durability="exit"):
                if mode == "updates":
                    if "__interrupt__" in chunk:
                        asked = chunk["__interrupt__"][0].value
                        continue
                    now = time.perf_counter()
                    steps += [(node, (now - last) * 1000) for node in chunk]
                    last = now
                    if on_step:
                        for node in chunk:
                            on_step(node)
                elif mode == "custom" and on_token and "token" in chunk:
                    on_token(chunk["token"])
                elif mode == "values":
                    state = chunk
            if asked is not None:
                return clarification(thread_id, question, loaded, asked, len(known.get("history") or []) + 1)
            answer = Answer.model_validate(state["answer"])
            trace = turn_trace(answer, steps, (time.perf_counter() - started) * 1000, state.get("model_prompt"))
            graph.update_state(config, {"traces": [trace]}, "compose")  # in the same transaction as the turn
            return answer

    def start_thread(
        self,
        study: str | Path | None = None,
        *,
        audience: Audience | None = None,
        modality: str | None = None,
        series: int | None = None,
        window: str | None = None,
        context: str | None = None,
    ) -> str:
        """Open a conversation before its first question (a web page opens the study, then asks), about `study` or,
        with None, about medicine in general (a study may join later). The study and the context are checked now;
        the thread keeps them with the settings, as `ask` would, and has no turns yet."""
        values: dict[str, Any] = {}
        study_path = None
        if study is not None:
            study_path = str(user_path(study, "study path").resolve())
            values["study"] = self.deps.study(study_path, modality, series, fresh=True).summary.model_dump(mode="json")
        if window:
            parse_window(window)
        if context is not None:
            values["context"] = clinical_context(context).model_dump()
        thread_id = uuid.uuid4().hex[:12]
        values.update(_thread_values(thread_id, study_path, modality, series, window, audience))
        with self.store.turn(thread_id) as saver:
            # Stored as if a turn had just finished, so the first question continues the thread like any follow-up.
            graph = self._graph.copy({"checkpointer": saver})
            graph.update_state({"configurable": {"thread_id": thread_id}}, values, "compose")
        return thread_id

    def set_context(self, thread_id: str, context: str) -> ClinicalContext:
        """Give the conversation clinical context (history, an earlier report's findings) for its next questions,
        replacing any it had; returns it as kept, de-identified."""
        given = clinical_context(context)
        with self.store.turn(thread_id) as saver:
            if not self._upgraded(thread_id, self._stored(thread_id)):
                raise AgentError(f"there is no conversation {thread_id!r} in {self.store.where}", "Check the id")
            graph = self._graph.copy({"checkpointer": saver})
            graph.update_state({"configurable": {"thread_id": thread_id}}, {"context": given.model_dump()}, "compose")
        return given

    def delete_thread(self, thread_id: str) -> bool:
        """Delete a conversation and everything stored with it; False when there was none."""
        with self.store.turn(thread_id) as saver:
            if not self._stored(thread_id):
                return False
            saver.delete_thread(thread_id)
        return True

    def export(self, thread_id: str, format: ExportFormat = "json") -> Export:
        """The findings of the thread's latest answer, for a system outside Vesalius: a FHIR R4 Bundle (a
        DiagnosticReport with an Observation per finding), a DICOM SR (TID 1500 measurement report) citing the
        de-identified study, or the findings as JSON. The study is read again (de-identified) for its UIDs, and
        must still be the one the answer was about."""
        from vesalius import __version__
        from vesalius.agent.findings import findings

        if format not in EXPORT_MEDIA:
            raise AgentError(f"{str(format)[:40]!r} is not an export format", f"Use one of: {', '.join(EXPORT_MEDIA)}")
        values = self.thread(user_text(thread_id, "thread id", "vesalius export THREAD"))
        if not values:
            raise AgentError(f"there is no conversation {thread_id!r} in {self.store.where}", "Check the id")
        if not values.get("answer"):
            raise AgentError(f"conversation {thread_id} has no answer yet", "Ask a question in it first")
        answer = Answer.model_validate(values["answer"])
        study = None
        if values.get("study_path") and answer.study is not None:
            study = self.deps.study(values["study_path"], values.get("modality"), values.get("series"), fresh=True)
            _same_study(answer.study.study_id, study.summary.study_id, values["study_path"], thread_id)
        found = findings(answer, study, self._coded, __version__)
        if format == "fhir":
            from vesalius.agent.fhir_report import to_fhir

            data = (json.dumps(to_fhir(found), indent=2) + "\n").encode()
        elif format == "dicom-sr":
            from vesalius.agent.sr_report import to_sr

            buffer = io.BytesIO()
            to_sr(found).save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
        else:
            data = (found.model_dump_json(indent=2) + "\n").encode()
        return Export(data=data, media_type=EXPORT_MEDIA[format], suffix=EXPORT_SUFFIX[format], findings=found)

    def _coded(self, label: str) -> Coded | None:
        """The concept a model's label names, when the knowledge base writes it out (never a guess by meaning)."""
        from vesalius.agent.findings import Coded

        hits = self.knowledge().search(FINDING_TERMS.get(label, label), k=1)
        if not hits or not hits[0].matched_term:
            return None
        c = hits[0].concept
        return Coded(name=c.preferred_name, umls_cui=c.umls_cui, snomed_ct=c.snomed_ct, icd10cm=c.icd10cm)

    # -- studies and models -------------------------------------------------------------------------------------

    def inspect(
        self,
        path: str | Path,
        *,
        modality: str | None = None,
        series: int | None = None,
        window: str | None = None,
        out: Path | None = None,
        images: int = 8,
    ) -> Inspection:
        """What ingestion makes of `path` (de-identified), as the agent would see it. With `out`, PNG renderings of
        `images` evenly spaced images (0: all) and study.json are written there."""
        from vesalius.agent.inspect import inspection, write_images

        if out is not None:
            writable_folder(out, "the output folder")
        if images < 0:
            raise AgentError(f"images={images} is negative", "Give 0 (all images) or a positive number")
        study = self.deps.study(user_path(path, "path"), modality, series)
        if window:
            study = study.focused(window=parse_window(window) or auto_window(study.values))
        written = write_images(study, out, images) if out else []
        report = inspection(study, written)
        if out:
            (out / "study.json").write_text(report.model_dump_json(indent=2) + "\n")
        return report

    def classify(
        self, paths: Iterable[str | Path], *, modality: str | None = None, heatmaps: Path | None = None
    ) -> Iterator[ImageRecord]:
        """Every trained model that applies to each image: calibrated probabilities and anomaly scores, one record
        per path, in order. A file that cannot be read gets a record with its error; the others go on."""
        return self._batch(paths, {"probabilities", "anomaly"}, modality, heatmaps)

    def anomaly(
        self, paths: Iterable[str | Path], *, modality: str | None = None, heatmaps: Path | None = None
    ) -> Iterator[ImageRecord]:
        """Anomaly score, regions and (with `heatmaps`, a folder) a heatmap overlay for each image."""
        return self._batch(paths, {"anomaly"}, modality, heatmaps)

    def _batch(
        self, paths: Iterable[str | Path], outputs: set[str], modality: str | None, heatmaps: Path | None
    ) -> Iterator[ImageRecord]:
        from vesalius.agent.batch import run_batch

        if heatmaps is not None:
            writable_folder(heatmaps, "the heatmap folder")
        return run_batch(self.deps, [Path(p) for p in paths], outputs, heatmaps, modality)

    def tools(self) -> list[ToolDeclaration]:
        """The vision tools, built in and from plugins: what each answers, applies to and outputs."""
        return self.deps.registry.declarations()

    @property
    def warnings(self) -> list[str]:
        """Problems that did not stop anything: tool plugins that failed to load, or use deprecated names."""
        return list(self.deps.registry.problems) if self._deps is not None else []

    # -- knowledge ----------------------------------------------------------------------------------------------

    def knowledge(self) -> KnowledgeBase:
        """The knowledge base in use (built, as a starter base of imaging knowledge, when there is none)."""
        return self.deps.knowledge()

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: Mode = "linked",
        semantic_types: Iterable[str] = (),
        sources: Iterable[str] = (),
    ) -> list[Hit]:
        """Ranked concepts for `query`, with codes, sources and scores."""
        query = user_text(query, "query", 'vesalius kb search "water on the brain"')
        if not 1 <= k <= 1000:
            raise AgentError(f"k={k} is out of range", "Ask for 1 to 1000 results")
        return self.knowledge().search(
            query, k=k, mode=mode, semantic_types=list(semantic_types), sources=list(sources)
        )

    def concept(self, code: str) -> Concept:
        """A concept by CUI, SNOMED CT id, ICD-10-CM code or source id (C0032285, SCTID:233604007, HP:0002090)."""
        from vesalius.retrieval.errors import KnowledgeError

        code = user_text(code, "code", "vesalius kb show C0032285")
        knowledge = self.knowledge()
        found = knowledge.concept(code)
        if found is None:
            raise KnowledgeError(
                f"no concept with the code {code!r} in {knowledge.version}",
                "Search for it by name with `vesalius kb search`",
            )
        return found

    def build_knowledge(self, options: BuildOptions, *, force: bool = False, progress: bool = False) -> BuildReport:
        """Build (or resume, or reuse) the knowledge base `options` describe under the knowledge root, and use it
        from now on. A build of the same sources and versions is reused unless `force`."""
        from vesalius.retrieval.build import build

        report = build(self.settings.knowledge_root, options, progress=progress, force=force)
        if self._deps is not None:
            self._deps.reopen_knowledge()
        return report

    def knowledge_info(self) -> dict[str, Any]:
        """The knowledge base's manifest: version, sources and their record counts, index, embedding model."""
        return dict(self.knowledge().manifest)

    @staticmethod
    def answer_schema() -> dict[str, Any]:
        """The JSON schema of `Answer` at this SCHEMA_VERSION, as committed."""
        from vesalius.agent.schema import committed_schema

        return committed_schema()


Audience = Literal["clinician", "patient"]
ExportFormat = Literal["json", "fhir", "dicom-sr"]
EXPORT_MEDIA = {"json": "application/json", "fhir": "application/fhir+json", "dicom-sr": "application/dicom"}
EXPORT_SUFFIX = {"json": ".json", "fhir": ".fhir.json", "dicom-sr": ".dcm"}
# A model's label where it alone would name the wrong concept (the breast model's "malignant" is a breast cancer).
FINDING_TERMS = {"malignant": "breast cancer"}


@dataclass(frozen=True)
class Export:
    data: bytes
    media_type: str
    suffix: str
    findings: Findings


def _thread_values(
    thread_id: str,
    study_path: str | None,
    modality: str | None,
    series: int | None,
    window: str | None,
    audience: str | None,
) -> dict[str, Any]:
    """What a thread keeps between turns: its study and the settings it was opened or last asked with."""
    return {
        "state_version": STATE_VERSION,
        "thread_id": thread_id,
        "study_path": study_path,
        "modality": modality,
        "series": series,
        "window": window,
        "audience": _audience(audience),
    }


def _audience(audience: str | None) -> str | None:
    if audience not in (None, "clinician", "patient"):
        raise AgentError(f"{str(audience)[:40]!r} is not an audience", "Use 'clinician' or 'patient'")
    return audience


def _prior(known: dict, study_id: str) -> dict[str, Any] | None:
    """The thread's study becomes the prior when another one is opened in the thread."""
    before = known.get("study") or {}
    if not known.get("study_path") or before.get("study_id") in (None, study_id):
        return None
    return {
        "path": known["study_path"],
        "modality": known.get("modality"),
        "series": known.get("series"),
        "study_id": before["study_id"],
    }


def _same_study(before: str | None, study_id: str, path: str, thread_id: str) -> None:
    """A follow-up re-reads the study from its path: answering about other pixels under the same name would be a
    silent wrong answer. `before` is the content id the thread (or its answer) was about."""
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
