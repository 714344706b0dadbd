"""The sources a build can use: the built-in ones plus any installed plugin (entry-point group `vesalius.sources`).

A plugin that fails to load, or that takes a built-in's name, is left out and reported in `problems`, one line
each: it never stops a build that does not ask for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.sources.base import ENTRY_POINT_GROUP, Source, SourceFactory
from vesalius.retrieval.sources.builtin import BUILTIN

_LIST_THEM = "`vesalius kb sources` lists the sources and their options"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_line(doc: str | None) -> str:
    return _one_line(inspect.cleandoc(doc).split("\n\n", 1)[0]) if doc else ""


@dataclass(frozen=True)
class SourceSpec:
    """A source that can be made: its name, where it comes from, and its factory."""

    name: str
    make: SourceFactory
    description: str
    options: Mapping[str, str]  # option -> what it sets ("" where the plugin does not say)
    plugin: EntryPoint | None = None  # None: built in

    @property
    def origin(self) -> str:
        if self.plugin is None:
            return "built-in"
        dist = self.plugin.dist
        return f"plugin {dist.name} {dist.version} ({self.plugin.value})" if dist else f"plugin {self.plugin.value}"

    def create(self, options: Mapping[str, str]) -> Source:
        """The source, configured by `options` (strings, as the command line gives them)."""
        known = ", ".join(self.options) or "none"
        try:
            inspect.signature(self.make).bind(**options)
        except TypeError as exc:
            raise KnowledgeError(
                f"source '{self.name}' cannot take those options ({exc})",
                f"Its options are: {known}; give each as --source-option {self.name}.KEY=VALUE",
            ) from None
        except ValueError:  # a callable without a signature (a C function): let the call itself check
            pass
        try:
            made = self.make(**options)
        except KnowledgeError:
            raise
        except Exception as exc:  # a plugin's bug is reported as its own, in one line
            raise KnowledgeError(
                f"source '{self.name}' ({self.origin}) could not be set up: {type(exc).__name__}: {_one_line(str(exc))}",
                f"Check its options ({known}), or report it to the plugin's authors",
            ) from exc
        if not isinstance(made, Source):
            raise KnowledgeError(
                f"source '{self.name}' ({self.origin}) gave {type(made).__name__}, which is not a source",
                "A source has name, label, stamp() and records(problems): see vesalius.retrieval.sources.base.Source",
            )
        if made.name != self.name:
            raise KnowledgeError(
                f"source '{self.name}' ({self.origin}) calls itself '{made.name}'",
                "A plugin's source must have its entry point's name: rename one of them",
            )
        return made


def _plugin_options(make: SourceFactory) -> dict[str, str]:
    declared = getattr(make, "options", None)
    if isinstance(declared, Mapping):
        return {str(k): str(v) for k, v in declared.items()}
    try:
        params = inspect.signature(make).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: "" for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


@dataclass
class SourceCatalog:
    specs: dict[str, SourceSpec] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # plugins left out, one line each
    broken: dict[str, str] = field(default_factory=dict)  # plugin name -> why it is left out

    def spec(self, name: str) -> SourceSpec:
        if name in self.specs:
            return self.specs[name]
        if name in self.broken:
            raise KnowledgeError(self.broken[name], "Fix or reinstall the plugin, or leave it out of the build")
        raise KnowledgeError(
            f"no source called '{name}' (there are: {', '.join(self.specs)})",
            f"Install the plugin that provides it, or choose another; {_LIST_THEM}",
        )

    def _load(self, ep: EntryPoint) -> None:
        where = f"{ep.dist.name} {ep.dist.version}: {ep.value}" if ep.dist else ep.value
        if ep.name in BUILTIN:
            problem = f"source plugin '{ep.name}' ({where}) is refused: a built-in source has that name"
            self.problems.append(f"{problem}; rename its entry point")
            return  # the built-in stays usable, so `--source NAME` is not reported as broken
        if ep.name in self.specs:
            self.problems.append(
                f"source plugin '{ep.name}' ({where}) is refused: {self.specs[ep.name].origin} has that name"
            )
            return
        try:
            make = ep.load()
            if not callable(make):
                raise TypeError(f"{ep.value} is a {type(make).__name__}, not a factory")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the other sources down with it
            problem = f"source plugin '{ep.name}' ({where}) failed to load: {type(exc).__name__}: {_one_line(str(exc))}"
            self.problems.append(problem)
            self.broken[ep.name] = problem
            return
        description = getattr(make, "description", None) or _first_line(make.__doc__)
        self.specs[ep.name] = SourceSpec(ep.name, make, str(description), _plugin_options(make), ep)


def available_sources(plugins: bool = True) -> SourceCatalog:
    """The built-in sources, then every installed plugin (sys.path is read again at each call)."""
    catalog = SourceCatalog()
    for name, (make, doc, options) in BUILTIN.items():
        catalog.specs[name] = SourceSpec(name, make, _first_line(doc), options)
    if plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            catalog._load(ep)
    return catalog


def parse_source_options(raw: Iterable[str], chosen: Iterable[str]) -> dict[str, dict[str, str]]:
    """`NAME.KEY=VALUE` strings as {name: {key: value}}, for the sources in `chosen` only."""
    chosen = list(chosen)
    options: dict[str, dict[str, str]] = {name: {} for name in chosen}
    for text in raw:
        target, eq, value = text.partition("=")
        name, dot, key = target.partition(".")
        name, key = name.strip(), key.strip()
        if not (eq and dot and name and key.isidentifier()):
            raise KnowledgeError(
                f"--source-option {text!r} is not NAME.KEY=VALUE",
                "Write it as, for example, --source-option obo.path=doid.obo",
            )
        if name not in options:
            raise KnowledgeError(
                f"--source-option {text!r} is for '{name}', which no --source names",
                f"Add --source {name}, or give the option to one of: {', '.join(chosen) or 'no source yet'}",
            )
        if key in options[name]:
            raise KnowledgeError(f"--source-option {name}.{key} is given twice", "Give each option once")
        options[name][key] = value
    return options


def choose_sources(
    flagged: Iterable[Source],
    explicit: Mapping[str, str],
    names: Iterable[str],
    raw_options: Iterable[str],
    catalog: SourceCatalog | None = None,
) -> tuple[Source, ...]:
    """The sources of a build: those the shorthand flags chose (`flagged`), with each `--source NAME` made from the
    catalog with its options. A named source replaces a flagged one of that name where it stands (so
    `--source icd10cm --source-option icd10cm.extensions=yes` configures the default one), unless a shorthand flag
    gave that source explicitly (`explicit`: name -> flag), which would make two conflicting descriptions of one source.
    """
    names = list(dict.fromkeys(names))
    options = parse_source_options(raw_options, names)
    sources = list(flagged)
    if not names:
        return tuple(sources)
    catalog = catalog or available_sources()
    for name in names:
        if name in explicit:
            raise KnowledgeError(
                f"the source '{name}' is given twice: by {explicit[name]} and by --source {name}",
                f"Use one of them (options of --source {name} go in --source-option {name}.KEY=VALUE)",
            )
        made = catalog.spec(name).create(options[name])
        at = next((i for i, s in enumerate(sources) if s.name == name), None)
        if at is None:
            sources.append(made)
        else:
            sources[at] = made
    return tuple(sources)
