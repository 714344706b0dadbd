"""What the graph's nodes need besides the state: settings, tools, the knowledge base and a model client.

One `Deps` per agent instance (no module-level state); expensive parts load on first use.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from vesalius.agent.config import Settings
from vesalius.agent.errors import AgentError
from vesalius.agent.vlm_client import VlmClient
from vesalius.retrieval import KnowledgeBase
from vesalius.vision import Study, load_study
from vesalius.vision.coded import user_modality
from vesalius.vision.deid import DeidOptions
from vesalius.vision.models.store import ModelStore
from vesalius.vision.options import IngestOptions
from vesalius.vision.tools import ToolRegistry
from vesalius.vision.windows import Window

STUDY_CACHE_SIZE = 4


@dataclass
class Deps:
    settings: Settings
    registry: ToolRegistry
    vlm: VlmClient | None = None
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    # A few loaded studies (a volume can take a gigabyte), each with the file's identity when it was read.
    _studies: OrderedDict[tuple[str, str | None, int | None], tuple[tuple | None, Study]] = field(
        default_factory=OrderedDict, repr=False
    )
    _studies_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ingest: IngestOptions | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Deps:
        vlm = None
        if settings.vlm_url:
            vlm = VlmClient(
                settings.vlm_url,
                settings.vlm_model,
                settings.vlm_api_key,
                settings.vlm_timeout_s,
                settings.vlm_extra_body,
            )
        registry = ToolRegistry.default(ModelStore(settings.models_dir), plugins=settings.tool_plugins)
        return cls(settings=settings, registry=registry, vlm=vlm)

    def knowledge(self) -> KnowledgeBase:
        if self._knowledge is None:
            s = self.settings
            self._knowledge = KnowledgeBase.open(s.knowledge_root, s.knowledge_path, s.embedding_model)
        return self._knowledge

    def ingest_options(self) -> IngestOptions:
        if self._ingest is None:
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
        study = load_study(path, modality=key[1], options=options)
        with self._studies_lock:
            self._studies[key] = (identity, study)
            while len(self._studies) > STUDY_CACHE_SIZE:
                self._studies.popitem(last=False)
        return study

    def forget(self, path: str | Path, modality: str | None = None, series: int | None = None) -> None:
        with self._studies_lock:
            self._studies.pop(_study_key(path, modality, series), None)

    def view(self, state: dict, *, windowed: bool = True) -> Study:
        """The thread's study focused on the image, and with `windowed` the window, this turn chose (nodes.route)."""
        study = self.study(state["study_path"], state.get("modality"), state.get("series"))
        view = state.get("view") or {}
        window = Window.model_validate(view["window"]) if windowed and view.get("window") else None
        return study.focused(view.get("key"), window)

    def close(self) -> None:
        if self.vlm:
            self.vlm.close()
        if self._knowledge is not None:
            self._knowledge.close()


def _study_key(path: str | Path, modality: str | None, series: int | None) -> tuple[str, str | None, int | None]:
    return (str(Path(path).resolve()), user_modality(modality) if modality else None, series)  # "dx" is "DX"


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
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
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
