"""What the graph's nodes need besides the state: settings, tools, the knowledge base and a model client.

One `Deps` per agent instance (no module-level state); expensive parts load on first use.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vesalius.agent.config import Settings
from vesalius.agent.errors import AgentError

if TYPE_CHECKING:  # each part loads on first use: looking up a code never imports torch, FAISS or pydicom
    from vesalius.agent.vlm_client import ChatModel
    from vesalius.retrieval.search import KnowledgeBase
    from vesalius.vision.options import IngestOptions
    from vesalius.vision.study import Study
    from vesalius.vision.tools.registry import ToolRegistry


@dataclass
class Deps:
    settings: Settings
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    # A few loaded studies (a volume can take a gigabyte), each with the file's identity when it was read.
    _studies: OrderedDict[tuple[str, str | None, int | None], tuple[tuple | None, Study]] = field(
        default_factory=OrderedDict, repr=False
    )
    _studies_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ingest: IngestOptions | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Deps:
        return cls(settings=settings)

    @cached_property
    def registry(self) -> ToolRegistry:
        from vesalius.vision.models.store import ModelStore
        from vesalius.vision.tools.registry import ToolRegistry

        return ToolRegistry.default(ModelStore(self.settings.models_dir), plugins=self.settings.tool_plugins)

    @cached_property
    def _question_encoder(self):
        from vesalius.retrieval.embedder import Embedder

        return Embedder()  # the VQA model's own encoder (all-MiniLM-L6-v2), whatever the knowledge base uses

    def question_vector(self, question: str):
        return self._question_encoder.encode([question])[0]

    @cached_property
    def vlm(self) -> ChatModel | None:
        """The model backend the settings name: a local model folder, else the model server(s), else none."""
        s = self.settings
        made: ChatModel
        if s.vlm_backend == "transformers" and s.vlm_model_dir is not None:  # the settings require the folder
            from vesalius.agent.local_model import LocalModel

            made = LocalModel(s.vlm_model_dir, s.vlm_model)  # loads on the first question that needs it
        elif s.vlm_url:
            from vesalius.agent.vlm_client import VlmClient

            made = VlmClient(
                s.vlm_url,
                s.vlm_model,
                s.vlm_api_key,
                s.vlm_timeout_s,
                s.vlm_extra_body,
                retries=s.vlm_retries,
                backoff_s=s.vlm_backoff_s,
            )
        else:
            return None
        # The agent's threads may ask at once (cached_property has no lock from Python 3.12): one backend wins.
        kept = self.__dict__.setdefault("vlm", made)
        if kept is not made:
            made.close()
        return kept

    def knowledge(self) -> KnowledgeBase:
        if self._knowledge is None:
            from vesalius.retrieval.search import KnowledgeBase

            s = self.settings
            self._knowledge = KnowledgeBase.open(s.knowledge_root, s.knowledge_path, s.embedding_model)
        return self._knowledge

    def reopen_knowledge(self) -> None:
        """The next question opens the base in use now (after a build replaced it)."""
        if self._knowledge is not None:
            self._knowledge.close()
            self._knowledge = None

    def ingest_options(self) -> IngestOptions:
        if self._ingest is None:
            from vesalius.vision.deid_record import DeidOptions
            from vesalius.vision.options import IngestOptions

            s = self.settings
            deid = DeidOptions(
                key=_deid_key(s.deid_key_path),
                dates=s.deid_dates,
                retain_patient_characteristics=s.deid_keep_patient_characteristics,
            )
            self._ingest = IngestOptions(deid=deid, max_voxels=s.max_voxels)
        return self._ingest

    def study(
        self, path: str | Path, modality: str | None = None, series: int | None = None, *, fresh: bool = False
    ) -> Study:
        """The study at `path`, loaded once; with `fresh`, loaded again if the file changed since (the start of a
        turn asks for that; the nodes of the turn then all see the same study)."""
        key = _study_key(path, modality, series)
        identity = _identity(key[0]) if fresh or key not in self._studies else None
        with self._studies_lock:
            cached = self._studies.get(key)
            if cached is not None and not (fresh and cached[0] != identity):
                self._studies.move_to_end(key)
                return cached[1]
        if identity is None:  # evicted by another thread since the look above
            identity = _identity(key[0])
        options = self.ingest_options()
        if series is not None:
            options = replace(options, series=series)
        from vesalius.vision.ingest import load_study

        study = load_study(path, modality=key[1], options=options)
        with self._studies_lock:
            self._studies[key] = (identity, study)
            self._studies.move_to_end(key)
            entries, budget = self.settings.study_cache_entries, self.settings.study_cache_mb * 2**20
            while len(self._studies) > 1 and (
                len(self._studies) > entries or sum(_size(s) for _, s in self._studies.values()) > budget
            ):
                self._studies.popitem(last=False)
        return study

    def cached_studies(self) -> int:
        return len(self._studies)

    def forget(self, path: str | Path, modality: str | None = None, series: int | None = None) -> None:
        with self._studies_lock:
            self._studies.pop(_study_key(path, modality, series), None)

    def view(self, state: Mapping[str, Any], *, windowed: bool = True) -> Study | None:
        """The thread's study focused on the image, and with `windowed` the window, this turn chose (nodes.route)."""
        if not state.get("study_path"):
            return None
        study = self.study(state["study_path"], state.get("modality"), state.get("series"))
        view = state.get("view") or {}
        from vesalius.vision.windows import Window

        window = Window.model_validate(view["window"]) if windowed and view.get("window") else None
        return study.focused(view.get("key"), window)

    def close(self) -> None:
        if self.__dict__.get("vlm"):  # made only if used
            self.vlm.close()
        if self._knowledge is not None:
            self._knowledge.close()


def _study_key(path: str | Path, modality: str | None, series: int | None) -> tuple[str, str | None, int | None]:
    from vesalius.vision.coded import user_modality

    return (str(Path(path).resolve()), user_modality(modality) if modality else None, series)  # "dx" is "DX"


def _size(study: Study) -> int:
    """Bytes a cached study holds: its volume, and the picture rendered from it."""
    image = study.__dict__.get("image")
    return study.volume.nbytes + (len(image.getbands()) * image.width * image.height if image is not None else 0)


def _identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _deid_key(path: Path) -> bytes:
    """The installation's de-identification secret, created on first use readable by its owner only. The same
    key maps the same UID to the same replacement across sessions, so re-opened studies stay recognisable."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unique per call: threads of one process create the key at once too.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # never replaces a key another process wrote first
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_bytes()
    except OSError as exc:
        raise AgentError(
            f"cannot read or create the de-identification key {path} ({exc.strerror})",
            "Check VESALIUS_DATA_DIR is writable, or set VESALIUS_DEID_KEY_FILE to a readable file",
        ) from exc
    if len(key) < 16:
        raise AgentError(
            f"the de-identification key {path} is only {len(key)} bytes", "Use a file of at least 16 random bytes"
        )
    return key
