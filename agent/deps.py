"""What the graph's nodes need besides the state: settings, tools, the knowledge base and a model client.

One `Deps` per agent instance (no module-level state); expensive parts load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.config import Settings
from agent.vlm_client import VlmClient
from retrieval import KnowledgeBase
from vision import Study, load_study
from vision.tools import VisionTool, default_tools


@dataclass
class Deps:
    settings: Settings
    tools: dict[str, VisionTool] = field(default_factory=default_tools)
    vlm: VlmClient | None = None
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    _studies: dict[tuple[str, str | None], Study] = field(default_factory=dict, repr=False)

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
        return cls(settings=settings, vlm=vlm)

    def knowledge(self) -> KnowledgeBase:
        if self._knowledge is None:
            s = self.settings
            self._knowledge = KnowledgeBase.open(s.cache_dir, s.knowledge_path, s.embedding_model)
        return self._knowledge

    def study(self, path: str | Path, modality: str | None = None) -> Study:
        key = (str(Path(path).resolve()), modality)
        if key not in self._studies:
            self._studies[key] = load_study(path, modality=modality)
        return self._studies[key]

    def close(self) -> None:
        if self.vlm:
            self.vlm.close()
