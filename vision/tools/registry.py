"""The tool registry: the built-in tools plus any installed plugin, and the gate that decides what applies.

A plugin is a distribution with an entry point in the group `vesalius.tools` naming a callable that takes the
ModelStore and returns a tool (or a list of tools) following `vesalius.vision.tools.base.VisionTool`. In pyproject.toml:

    [project.entry-points."vesalius.tools"]
    my_segmenter = "my_package.tools:make_tools"

The agent reads each tool's declaration (what it answers, what it applies to, what it outputs) and never names one.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path

from pydantic import BaseModel

from vesalius.vision.models.gate import TRAINED_KINDS, StudyKind, kind_from_tags, screen
from vesalius.vision.models.store import ModelStore
from vesalius.vision.study import Study
from vesalius.vision.tools.asymmetry_map import AsymmetryMap
from vesalius.vision.tools.base import ToolResult, VisionTool, not_applied
from vesalius.vision.tools.ct_attenuation import CtAttenuation
from vesalius.vision.tools.image_quality import ImageQuality
from vesalius.vision.tools.model_tools import BreastUltrasoundClassifier, ChestAnomaly, PneumoniaClassifier
from vesalius.vision.tools.old_names import REMOVED_IN
from vesalius.vision.tools.old_names import install as old_names_install

ENTRY_POINT_GROUP = "vesalius.tools"
_MAX_PARALLEL = 4  # tools at once: each holds its model and a copy of the image
_FILLED = {
    "measurements": lambda r: bool(r.measurements),
    "probabilities": lambda r: bool(r.probabilities),
    "anomaly": lambda r: r.anomaly is not None,
    "summary": lambda r: bool(r.summary),
}


class ToolDeclaration(BaseModel):
    name: str
    description: str
    applies_to: str
    answers: list[str]
    outputs: list[str]
    source: str


def builtin_tools(store: ModelStore) -> list[VisionTool]:
    return [
        ImageQuality(),
        CtAttenuation(),
        AsymmetryMap(),
        PneumoniaClassifier(store),
        ChestAnomaly(store),
        BreastUltrasoundClassifier(store),
    ]


class ToolRegistry:
    def __init__(self, tools: Iterable[VisionTool], store: ModelStore):
        self.store = store
        self.tools: dict[str, VisionTool] = {}
        self.sources: dict[str, str] = {}
        self.problems: list[str] = []  # plugins that failed to load: reported, never fatal
        for tool in tools:
            self.add(tool)

    @classmethod
    def default(cls, store: ModelStore | None = None, *, plugins: bool = True) -> ToolRegistry:
        store = store or ModelStore()
        registry = cls(builtin_tools(store), store)
        if plugins:
            registry.load_plugins()
        return registry

    def add(self, tool: VisionTool, source: str = "built-in") -> None:
        missing = [
            a
            for a in ("name", "description", "applies_to", "answers", "outputs", "applicability", "run")
            if not hasattr(tool, a)
        ]
        if missing:
            raise TypeError(f"tool {tool!r} lacks {', '.join(missing)} (see vesalius.vision.tools.base.VisionTool)")
        if tool.name in self.tools:
            raise ValueError(f"two tools are called '{tool.name}' ({self.sources.get(tool.name)} and {source})")
        self.tools[tool.name] = tool
        self.sources[tool.name] = source

    def load_plugins(self) -> None:
        found = entry_points(group=ENTRY_POINT_GROUP)
        old_names = old_names_install() if found else None
        for ep in found:
            before = len(old_names.used) if old_names else 0
            try:
                made = ep.load()(self.store)
                for tool in made if isinstance(made, list | tuple) else [made]:
                    self.add(tool, f"plugin {ep.name} ({ep.value})")
                if old_names and (used := old_names.used[before:]):
                    self.problems.append(
                        f"tool plugin '{ep.name}' imports {', '.join(sorted(set(used)))} by the old name; it works "
                        f"until Vesalius {REMOVED_IN}: import them from vesalius.{used[0].split('.')[0]} instead"
                    )
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the built-in tools down with it
                self.problems.append(
                    f"tool plugin '{ep.name}' ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                )

    def declarations(self) -> list[ToolDeclaration]:
        return [
            ToolDeclaration(
                name=t.name,
                description=t.description,
                applies_to=t.applies_to,
                answers=sorted(t.answers),
                outputs=sorted(t.outputs),
                source=self.sources[t.name],
            )
            for t in self.tools.values()
        ]

    def answers(self) -> dict[str, frozenset[str]]:
        """What each tool answers, for the router."""
        return {name: frozenset(t.answers) for name, t in self.tools.items()}

    def kind(self, study: Study) -> StudyKind:
        """Pixel checks for every study, then tags; the gate network runs where tags do not settle the kind, and
        where they settle it as a kind a trained model reads (vesalius.vision.models.gate)."""
        if (refused := screen(study.image)) is not None:
            return refused
        s = study.summary
        by_tags = kind_from_tags(
            modality=s.modality, modality_source=s.modality_source, body_part=s.body_part, view=s.view
        )
        if by_tags is None:
            return self.store.gate().read(study.image)
        if by_tags.kind in TRAINED_KINDS:
            return self.store.gate().confirm(study.image, by_tags)
        return by_tags

    def run(
        self,
        study: Study,
        wanted: Iterable[str],
        out_dir: Path | None,
        not_wanted: str = "not needed for this question",
        kind: StudyKind | None = None,
    ) -> tuple[StudyKind, list[ToolResult]]:
        """Every tool, in order: its result, or why it did not run (not wanted, or not for this kind of study).
        The tools that apply run at once: each reads the study and writes only its own result."""
        wanted = set(wanted)
        kind = kind or self.kind(study)
        results: dict[str, ToolResult] = {}
        to_run = []
        for name, tool in self.tools.items():
            if name not in wanted:
                results[name] = not_applied(tool, not_wanted)
            elif (why_not := tool.applicability(study, kind)) is not None:
                results[name] = not_applied(tool, why_not)
            else:
                to_run.append(tool)
        if len(to_run) > 1:
            _ = study.image  # rendered once, before the tools share it
            with ThreadPoolExecutor(max_workers=min(len(to_run), _MAX_PARALLEL)) as pool:
                ran = list(pool.map(lambda t: _checked(t, t.run(study, out_dir)), to_run))
        else:
            ran = [_checked(t, t.run(study, out_dir)) for t in to_run]
        results.update({r.tool: r for r in ran})
        return kind, [results[name] for name in self.tools]


def _checked(tool: VisionTool, result: ToolResult) -> ToolResult:
    """A tool that does not return what it declares is reported, so a broken plugin is visible, not silent."""
    missing = [o for o in tool.outputs if o in _FILLED and not _FILLED[o](result)]
    if result.applied and missing:
        return result.model_copy(
            update={"caveats": [*result.caveats, f"the tool declared {', '.join(missing)} but returned none"]}
        )
    return result
