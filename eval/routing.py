"""Routing evaluation on development questions: does a router choose the intent and the tools a question needs?

    .venv/bin/python -m vesalius.eval.routing --out eval/results/ROUTING.md            # the rule router
    .venv/bin/python -m vesalius.eval.routing --vlm-url URL --out ROUTING-model.md     # adds the model planner
    .venv/bin/python -m vesalius.eval.routing --regenerate [--shared-data ../shared/data]   # rewrites the sample

The labelled sample (`eval/data/routing_dev.tsv`) holds seeded random questions from the development parts of
SLAKE (`validate.json`, English) and VQA-RAD (`trainset.json`). Each question's intent is mapped from the dataset's
own question type (`SLAKE_TYPES`, `VQA_RAD_TYPES`), then read by hand; a label changed on reading says so
(`mapped_intent` differs, `origin` is `checked`, `note` says why). The tools a question needs follow from its intent
and its study (`needed_tools`): a tool is needed when it answers the intent and applies to the study's kind, and
image_quality joins whenever another tool is needed.

A router is any `Callable[[question, study description], RoutePlan]`. Its tools are scored after the same
applicability rules, as the agent drops a tool that does not apply to the study before it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vesalius.agent.router import RoutePlan, plan_route
from vesalius.errors import VesaliusError
from vesalius.eval.errors import BenchmarkError
from vesalius.eval.loaders._read import read_text
from vesalius.eval.loaders.vqa_rad import question_type as vqa_rad_question_type

Router = Callable[[str, str], RoutePlan]

INTENTS = ("describe", "abnormality", "measurement", "quality", "explain")
SOURCES = ("slake", "vqa-rad")
ORIGINS = ("mapped", "checked")
COLUMNS = (
    "source",
    "id",
    "question",
    "study",
    "dataset_type",
    "mapped_intent",
    "intent",
    "tools",
    "origin",
    "note",
)
NONE = "-"  # an empty tools or note field: never a trailing empty field an editor could strip
SEED = 20261201
SAMPLE = {"slake": 300, "vqa-rad": 300}
MAX_QUESTION = 2000

# The dataset's question type -> the intent the router should pick. A question with several VQA-RAD types takes the
# first intent in INTENT_PRIORITY that one of them maps to ("PRES, POS" asks whether a finding is there: abnormality).
SLAKE_TYPES = {
    "Abnormality": "abnormality",
    "Modality": "describe",
    "Plane": "describe",
    "Organ": "describe",
    "Position": "describe",  # mostly "which part of the body": questions locating a finding are relabelled
    "Size": "describe",  # "the largest organ", "liver or spleen, which is bigger": normal anatomy, no size tool
    "Quantity": "describe",  # "how many kidneys": counting organs, no tool counts
    "Shape": "describe",  # "the shape of the kidney": no tool measures shape
    "Color": "measurement",  # grey level: density on CT (ct_attenuation), signal on MRI (no tool)
    "KG": "explain",  # knowledge about the organs or disease shown: function, system, treatment
}
VQA_RAD_TYPES = {
    "ABN": "abnormality",
    "PRES": "abnormality",  # "is there a pneumothorax?": presence of a finding
    "POS": "abnormality",  # "where is the mass?": VQA-RAD locates findings (asymmetry_map, chest_anomaly do)
    "SIZE": "abnormality",  # "is the heart enlarged?", "is the cortex atrophied?": enlargement is a finding
    "ATTRIB": "abnormality",  # "is the mass well-defined?": an attribute of a finding
    "COUNT": "abnormality",  # "how many masses?": mostly counts of lesions
    "COLOR": "measurement",  # "hyperdense or hypodense?", "hyperintense?": density or signal
    "MODALITY": "describe",
    "PLANE": "describe",
    "ORGAN": "describe",
    "OTHER": "explain",  # cause, prevalence, next step, likely vessel: knowledge and reasoning
}
INTENT_PRIORITY = ("abnormality", "measurement", "quality", "describe", "explain")

# Study descriptions: "CT of the chest", "X-ray of the chest (lateral view)", "ultrasound of the breast".
MODALITIES = ("CT", "MRI", "X-ray", "ultrasound")
_STUDY = re.compile(r"(CT|MRI|X-ray|ultrasound) of the ([a-z]+(?: [a-z]+)?)( \(lateral view\))?")
SLAKE_MODALITIES = {"CT": "CT", "MRI": "MRI", "X-Ray": "X-ray"}
SLAKE_REGIONS = {
    "Lung": "chest",
    "Chest_lung": "chest",
    "Chest_heart": "chest",
    "Chest_mediastinal": "chest",
    "Abdomen": "abdomen",
    "Pelvic Cavity": "pelvis",
    "Brain": "head",
    "Brain_Tissue": "head",
    "Brain_Face": "head",
    "Neck": "neck",
}
VQA_RAD_REGIONS = {"HEAD": "head", "CHEST": "chest", "ABD": "abdomen"}


@dataclass(frozen=True)
class Study:
    modality: str
    region: str
    lateral: bool = False

    @property
    def frontal_chest_xray(self) -> bool:
        return self.modality == "X-ray" and self.region == "chest" and not self.lateral

    def describe(self) -> str:
        return f"{self.modality} of the {self.region}" + (" (lateral view)" if self.lateral else "")


def parse_study(text: str) -> Study:
    match = _STUDY.fullmatch(text)
    if not match:
        raise ValueError(
            f"study {text[:80]!r} is not '<{'|'.join(MODALITIES)}> of the <region>', with ' (lateral view)' for a "
            "lateral film"
        )
    return Study(match.group(1), match.group(2), bool(match.group(3)))


# When each registry tool applies, from its own declaration (vesalius tools); the images are assumed greyscale and
# CT assumed to carry Hounsfield units, which the study descriptions cannot say.
TOOL_RULES: dict[str, tuple[str, Callable[[Study], bool]]] = {
    "image_quality": ("every image", lambda s: True),
    "ct_attenuation": ("CT", lambda s: s.modality == "CT"),
    "asymmetry_map": (
        "CT, MRI and X-rays except frontal chest X-rays (not ultrasound)",
        lambda s: s.modality in ("CT", "MRI", "X-ray") and not s.frontal_chest_xray,
    ),
    "pneumonia_classifier": ("frontal chest X-rays", lambda s: s.frontal_chest_xray),
    "chest_anomaly": ("frontal chest X-rays", lambda s: s.frontal_chest_xray),
    "breast_ultrasound_classifier": (
        "ultrasound of the breast",
        lambda s: s.modality == "ultrasound" and s.region == "breast",
    ),
}
# Intents a tool is run for. describe and explain need none: the datasets' describe questions ask for one visible
# property (modality, plane, organ, where a normal organ is), which the study and the model answer.
TOOL_INTENTS = ("abnormality", "measurement", "quality")


def registry_tools() -> dict[str, frozenset[str]]:
    """The built-in tools and the intents each answers, as the agent's router receives them."""
    from vesalius.vision.tools.registry import ToolRegistry

    return ToolRegistry.default(plugins=False).answers()


def applies(tool: str, study: Study) -> bool:
    rule = TOOL_RULES.get(tool)
    return rule is not None and rule[1](study)


def needed_tools(intent: str, study: Study, available: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The tools answering `intent` that apply to `study`, with every applicable quality tool when there is one."""
    if intent not in TOOL_INTENTS:
        return frozenset()
    tools = {name for name, answers in available.items() if intent in answers and applies(name, study)}
    if tools:
        tools |= {name for name, answers in available.items() if "quality" in answers and applies(name, study)}
    return frozenset(tools)


def tool_order(tools: Iterable[str], available: Mapping[str, frozenset[str]]) -> list[str]:
    order = list(available)
    return sorted(tools, key=lambda t: (order.index(t) if t in order else len(order), t))


@dataclass(frozen=True)
class Row:
    source: str
    id: str
    question: str
    study: str
    dataset_type: str
    mapped_intent: str
    intent: str
    tools: frozenset[str]
    origin: str
    note: str = ""
    line: int = 0

    def cells(self, available: Mapping[str, frozenset[str]]) -> list[str]:
        return [
            self.source,
            self.id,
            self.question,
            self.study,
            self.dataset_type,
            self.mapped_intent,
            self.intent,
            ",".join(tool_order(self.tools, available)) or NONE,
            self.origin,
            self.note or NONE,
        ]


def bundled_data() -> Path:
    return Path(str(resources.files("vesalius.eval") / "data" / "routing_dev.tsv"))


def bundled_studies() -> Path:
    return Path(str(resources.files("vesalius.eval") / "data" / "routing_vqa_rad_studies.tsv"))


def _tab_lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) for each line that is neither blank nor a # comment."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.startswith("#"):
            yield n, line


def _bad(path: Path, n: int, problem: str) -> BenchmarkError:
    return BenchmarkError(f"{path.name} line {n}: {problem}", f"Fix that line of {path}")


def load_rows(path: Path, available: Mapping[str, frozenset[str]] | None = None) -> list[Row]:
    """The labelled sample, checked line by line: a bad line is a BenchmarkError naming it."""
    available = registry_tools() if available is None else available
    lines = iter(_tab_lines(read_text(path, "routing sample")))
    first = next(lines, None)
    if first is None:
        raise BenchmarkError(f"{path} has no header line", f"Start it with the tab-separated columns {COLUMNS}")
    n, header = first
    if tuple(header.split("\t")) != COLUMNS:
        raise _bad(path, n, f"the header is not the {len(COLUMNS)} tab-separated columns {', '.join(COLUMNS)}")
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    for n, line in lines:
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise _bad(path, n, f"{len(cells)} tab-separated fields, expected {len(COLUMNS)}")
        f = dict(zip(COLUMNS, (c.strip() for c in cells)))
        for name in ("source", "id", "question", "study", "dataset_type", "intent", "origin"):
            if not f[name]:
                raise _bad(path, n, f"empty {name}")
        if f["source"] not in SOURCES:
            raise _bad(path, n, f"source {f['source'][:40]!r} is not one of {', '.join(SOURCES)}")
        for name in ("intent", "mapped_intent"):
            if f[name] not in INTENTS:
                raise _bad(path, n, f"{name} {f[name][:40]!r} is not one of {', '.join(INTENTS)}")
        if f["origin"] not in ORIGINS:
            raise _bad(path, n, f"origin {f['origin'][:40]!r} is not one of {', '.join(ORIGINS)}")
        if f["origin"] == "mapped" and f["intent"] != f["mapped_intent"]:
            raise _bad(path, n, "a mapped label differs from mapped_intent: mark an overridden label 'checked'")
        if len(f["question"]) > MAX_QUESTION:
            raise _bad(path, n, f"the question is over {MAX_QUESTION} characters")
        try:
            parse_study(f["study"])
        except ValueError as e:
            raise _bad(path, n, str(e)) from None
        tools = frozenset() if f["tools"] == NONE else frozenset(t.strip() for t in f["tools"].split(","))
        if unknown := sorted(t for t in tools if t not in available):
            raise _bad(path, n, f"unknown tool {unknown[0][:40]!r}; the registry has {', '.join(available)}")
        key = (f["source"], f["id"])
        if key in seen:
            raise _bad(path, n, f"{f['source']} question {f['id'][:40]} is already on line {seen[key]}")
        seen[key] = n
        rows.append(
            Row(
                source=f["source"],
                id=f["id"],
                question=f["question"],
                study=f["study"],
                dataset_type=f["dataset_type"],
                mapped_intent=f["mapped_intent"],
                intent=f["intent"],
                tools=tools,
                origin=f["origin"],
                note="" if f["note"] == NONE else f["note"],
                line=n,
            )
        )
    if not rows:
        raise BenchmarkError(f"{path} has a header but no questions", "Regenerate it with --regenerate")
    return rows


# ---- regenerating the sample from the shared data ----


def mapped_intent(source: str, dataset_type: str) -> str:
    if source == "slake":
        if dataset_type not in SLAKE_TYPES:
            raise ValueError(f"SLAKE content_type {dataset_type!r} has no mapping")
        return SLAKE_TYPES[dataset_type]
    parts = [p.strip() for p in dataset_type.split(",")]
    if unknown := [p for p in parts if p not in VQA_RAD_TYPES]:
        raise ValueError(f"VQA-RAD question_type {unknown[0]!r} has no mapping")
    intents = {VQA_RAD_TYPES[p] for p in parts}
    return next(i for i in INTENT_PRIORITY if i in intents)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())  # tabs and newlines inside published questions would break a TSV row


def load_vqa_rad_studies(path: Path) -> dict[str, tuple[str, str]]:
    """image name -> (modality, view) from the hand-made table of the sampled VQA-RAD images."""
    lines = iter(_tab_lines(read_text(path, "VQA-RAD study table")))
    first = next(lines, None)
    if first is None or tuple(first[1].split("\t")) != ("image_name", "modality", "view", "origin", "note"):
        raise BenchmarkError(f"{path} lacks its header line", "Restore image_name, modality, view, origin, note")
    table: dict[str, tuple[str, str]] = {}
    for n, line in lines:
        cells = line.split("\t")
        if len(cells) != 5:
            raise _bad(path, n, f"{len(cells)} tab-separated fields, expected 5")
        name, modality, view = (c.strip() for c in cells[:3])
        if modality not in MODALITIES or view not in ("frontal", "lateral", NONE):
            raise _bad(path, n, f"modality {modality[:20]!r} or view {view[:20]!r} unknown")
        table[name] = (modality, view)
    return table


def _slake(shared: Path) -> list[dict[str, Any]]:
    data = json.loads(read_text(shared / "slake" / "validate.json", "SLAKE validation file"))
    out = []
    for q in data:
        if q.get("q_lang") != "en":
            continue
        modality, region = SLAKE_MODALITIES.get(q["modality"]), SLAKE_REGIONS.get(q["location"])
        if modality is None or region is None:
            raise ValueError(f"SLAKE question {q['qid']}: no study for {q['modality']!r} of {q['location']!r}")
        out.append(
            {
                "id": str(q["qid"]),
                "question": _one_line(q["question"]),
                "study": Study(modality, region).describe(),
                "dataset_type": q["content_type"].strip(),
            }
        )
    return out


def _vqa_rad(shared: Path) -> list[dict[str, Any]]:
    data = json.loads(read_text(shared / "vqa-rad" / "trainset.json", "VQA-RAD train file"))
    return [
        {
            "id": str(q["qid"]),
            "question": _one_line(q["question"]),
            "image": q["image_name"],
            "region": VQA_RAD_REGIONS[q["image_organ"].strip().upper()],
            "dataset_type": vqa_rad_question_type(q["question_type"]),
        }
        for q in data
    ]


def sample_items(shared: Path) -> dict[str, list[dict[str, Any]]]:
    """The seeded sample of each source, in id order; VQA-RAD items still lack their study's modality."""
    out = {}
    for source, items in (("slake", _slake(shared)), ("vqa-rad", _vqa_rad(shared))):
        items.sort(key=lambda q: int(q["id"]))
        chosen = random.Random(f"{SEED}-{source}").sample(items, SAMPLE[source])
        out[source] = sorted(chosen, key=lambda q: int(q["id"]))
    return out


def regenerate(
    shared: Path,
    existing: Path | None = None,
    studies: Path | None = None,
    available: Mapping[str, frozenset[str]] | None = None,
) -> list[Row]:
    """The sample rebuilt from the shared data; checked labels (intent, note) are kept from `existing`."""
    available = registry_tools() if available is None else available
    kept = {(r.source, r.id): r for r in load_rows(existing, available)} if existing and existing.exists() else {}
    table = load_vqa_rad_studies(studies or bundled_studies())
    rows = []
    for source, items in sample_items(shared).items():
        for q in items:
            if source == "vqa-rad":
                if q["image"] not in table:
                    raise ValueError(f"VQA-RAD image {q['image']} is not in the study table {studies}")
                modality, view = table[q["image"]]
                q["study"] = Study(modality, q["region"], view == "lateral").describe()
            mapped = mapped_intent(source, q["dataset_type"])
            old = kept.get((source, q["id"]))
            checked = old is not None and old.origin == "checked"
            intent = old.intent if old and checked else mapped
            rows.append(
                Row(
                    source=source,
                    id=q["id"],
                    question=q["question"],
                    study=q["study"],
                    dataset_type=q["dataset_type"],
                    mapped_intent=mapped,
                    intent=intent,
                    tools=needed_tools(intent, parse_study(q["study"]), available),
                    origin="checked" if checked else "mapped",
                    note=old.note if old and checked else "",
                )
            )
    return rows


TSV_HEADER = """\
# Routing evaluation sample: development questions only (SLAKE 1.0 validate.json, English; VQA-RAD trainset.json).
# SLAKE 1.0 (Liu et al., ISBI 2021), CC BY 4.0; VQA-RAD (Lau et al., Sci Data 2018), CC0 1.0. Questions as published
# (whitespace collapsed). Regenerate: python -m vesalius.eval.routing --regenerate (seeded; keeps checked labels).
# mapped_intent: from the dataset's question type; intent: the label (origin 'checked' = read by hand, note = why
# it differs); tools: what the label needs on this study (rules in eval/results/ROUTING.md); '-' = none.
"""


def write_rows(rows: Sequence[Row], path: Path, available: Mapping[str, frozenset[str]] | None = None) -> None:
    available = registry_tools() if available is None else available
    body = ["\t".join(COLUMNS)] + ["\t".join(r.cells(available)) for r in rows]
    path.write_text(TSV_HEADER + "\n".join(body) + "\n", encoding="utf-8")


# ---- scoring ----


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Outcome:
    row: Row
    intent: str
    tools: frozenset[str]  # chosen and applicable to the study
    fallback: bool = False


@dataclass
class Scores:
    n: int = 0
    intent_correct: int = 0
    exact: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    missed: int = 0  # questions where a needed tool was not chosen
    fallbacks: int = 0

    @property
    def intent_accuracy(self) -> float:
        return self.intent_correct / self.n if self.n else math.nan

    @property
    def exact_match(self) -> float:
        return self.exact / self.n if self.n else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan


def score(outcomes: Iterable[Outcome]) -> Scores:
    s = Scores()
    for o in outcomes:
        s.n += 1
        s.intent_correct += o.intent == o.row.intent
        s.exact += o.tools == o.row.tools
        s.tp += len(o.tools & o.row.tools)
        s.fp += len(o.tools - o.row.tools)
        s.fn += len(o.row.tools - o.tools)
        s.missed += bool(o.row.tools - o.tools)
        s.fallbacks += o.fallback
    return s


@dataclass
class RouterRun:
    name: str
    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)


def route_all(
    name: str, router: Router, rows: Sequence[Row], *, fallback: Callable[[], bool] | None = None, progress=True
) -> RouterRun:
    """Each row through `router`; the plan's tools kept where they apply to the row's study. `fallback`, when
    given, says whether the question just routed fell back to the rules."""
    outcomes = []
    for row in tqdm(rows, desc=name, disable=not progress, file=sys.stderr):
        plan = router(row.question, row.study)
        study = parse_study(row.study)
        tools = frozenset(t for t in plan.tools if t not in TOOL_RULES or applies(t, study))
        outcomes.append(Outcome(row, plan.intent, tools, bool(fallback and fallback())))
    return RouterRun(name, outcomes)


def rule_router(available: Mapping[str, frozenset[str]]) -> Router:
    return lambda question, study: plan_route(question, available)


class ModelRouter:
    """The model planner (vesalius.agent.planner.plan_with_model) with the rules where it raises PlanningError."""

    def __init__(self, url: str, available: Mapping[str, frozenset[str]]):
        try:
            from vesalius.agent import planner
        except ImportError as e:
            raise BenchmarkError(f"the model planner cannot be imported ({e})", "Run without --vlm-url") from None
        plan = getattr(planner, "plan_with_model", None)
        if plan is None:
            raise BenchmarkError("vesalius.agent.planner has no plan_with_model", "Run without --vlm-url")
        from vesalius.agent.vlm_client import VlmClient

        self._plan = plan
        self._error = planner.PlanningError
        self.client = VlmClient(url)
        self.available = available
        self.fallbacks: Counter[str] = Counter()
        self._fell_back = False
        extra: dict[str, Any] = {}
        if "declarations" in inspect.signature(plan).parameters:
            from vesalius.vision.tools.registry import ToolRegistry

            extra["declarations"] = [
                (d.name, d.description, d.applies_to, d.answers)
                for d in ToolRegistry.default(plugins=False).declarations()
                if d.name in available
            ]
        self._extra = extra

    def check(self) -> None:
        """Reach the server once (it lists its model) before hundreds of questions each wait to fall back."""
        _ = self.client.model

    def __call__(self, question: str, study: str) -> RoutePlan:
        self._fell_back = False
        try:
            return self._plan(self.client, question, self.available, study, **self._extra)
        except self._error as e:
            self._fell_back = True
            self.fallbacks[" ".join(str(e).split())[:120]] += 1
            return plan_route(question, self.available)

    def fell_back(self) -> bool:
        return self._fell_back


# ---- the report ----


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1%}"


def _ci(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return "" if n == 0 else f" [{lo:.1%}, {hi:.1%}]"


def _score_row(label: str, s: Scores, with_fallbacks: bool) -> str:
    cells = [
        label,
        str(s.n),
        f"{_pct(s.intent_accuracy)}{_ci(s.intent_correct, s.n)}",
        f"{_pct(s.exact_match)}{_ci(s.exact, s.n)}",
        _pct(s.precision),
        _pct(s.recall),
        str(s.missed),
    ]
    if with_fallbacks:
        cells.append(str(s.fallbacks))
    return "| " + " | ".join(cells) + " |"


def _score_table(groups: Sequence[tuple[str, list[Outcome]]], with_fallbacks: bool, first: str) -> list[str]:
    head = [
        first,
        "n",
        "intent accuracy [95% CI]",
        "exact tool set [95% CI]",
        "tool precision",
        "tool recall",
        "questions missing a needed tool",
    ]
    if with_fallbacks:
        head.append("fell back to rules")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + [_score_row(label, score(o), with_fallbacks) for label, o in groups if o]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def report(
    runs: Sequence[RouterRun], rows: Sequence[Row], data: Path, command: str, available: Mapping[str, frozenset[str]]
) -> str:
    import vesalius.agent.router as router_module

    counts = Counter(r.source for r in rows)
    origins = Counter(r.origin for r in rows)
    overridden = [r for r in rows if r.intent != r.mapped_intent]
    lines = [
        "# Routing on development questions",
        "",
        f"Command: `{command}`  ",
        f"Data: `{data.name}` (sha256 {_sha(data)}), {len(rows)} questions: "
        + ", ".join(f"{counts[s]} {s}" for s in SOURCES)
        + f"; labels {origins['checked']} checked by hand, {origins['mapped']} mapped only; "
        f"{len(overridden)} checked labels differ from the mapping.  ",
        (
            f"Rule router: `agent/router.py` sha256 {_sha(Path(str(router_module.__file__)))}. "
            "Development data only (SLAKE validate, VQA-RAD train): no test split was read."
        ),
        "",
        (
            "Intent accuracy: the router's intent equals the label. Exact tool set: the tools it chose that apply to the "
            "study equal the tools the label needs (both empty counts as a match). Tool precision and recall are micro "
            "averages over (question, tool) pairs. Intervals are 95% Wilson score intervals."
        ),
        "",
    ]
    fallbacks = any(o.fallback for run in runs for o in run.outcomes) or any(r.name != "rules" for r in runs)
    lines += ["## Overall", ""]
    lines += _score_table([(run.name, run.outcomes) for run in runs], fallbacks, "router")
    for run in runs:
        lines += ["", f"## {run.name}: by source and by label intent", ""]
        groups = [(f"source {s}", [o for o in run.outcomes if o.row.source == s]) for s in SOURCES]
        groups += [(f"label {i}", [o for o in run.outcomes if o.row.intent == i]) for i in INTENTS]
        if len({o.row.origin for o in run.outcomes}) > 1:
            groups += [(f"origin {g}", [o for o in run.outcomes if o.row.origin == g]) for g in ORIGINS]
        lines += _score_table(groups, fallbacks, "group")
        lines += ["", f"### {run.name}: intent confusion (rows: label, columns: router)", ""]
        lines += ["| label \\ router | " + " | ".join(INTENTS) + " | n |", "|" + "---|" * (len(INTENTS) + 2)]
        pairs = Counter((o.row.intent, o.intent) for o in run.outcomes)
        for label in INTENTS:
            total = sum(pairs[(label, p)] for p in INTENTS)
            lines.append(f"| {label} | " + " | ".join(str(pairs[(label, p)]) for p in INTENTS) + f" | {total} |")
        lines += ["", f"### {run.name}: by tool", ""]
        lines += ["| tool | needed | chosen | both | missed | extra |", "|---|---|---|---|---|---|"]
        for tool in available:
            need = sum(tool in o.row.tools for o in run.outcomes)
            chose = sum(tool in o.tools for o in run.outcomes)
            both = sum(tool in o.tools and tool in o.row.tools for o in run.outcomes)
            lines.append(f"| {tool} | {need} | {chose} | {both} | {need - both} | {chose - both} |")
        lines += ["", f"### {run.name}: intent errors, up to 3 questions each", ""]
        wrong = Counter((o.row.intent, o.intent) for o in run.outcomes if o.intent != o.row.intent)
        for (label, got), k in wrong.most_common():
            lines.append(f"- label **{label}**, router **{got}** ({k}):")
            examples = [o.row for o in run.outcomes if (o.row.intent, o.intent) == (label, got)][:3]
            lines += [f"  - {r.source} {r.id} ({r.study}): {r.question}" for r in examples]
        if run.notes:
            lines += ["", *run.notes]
    lines += ["", "## How the labels are made", ""] + _rules_text(available, rows)
    return "\n".join(lines) + "\n"


def _rules_text(available: Mapping[str, frozenset[str]], rows: Sequence[Row]) -> list[str]:
    agree = Counter((r.source, r.dataset_type, r.intent == r.mapped_intent) for r in rows if r.origin == "checked")
    types = sorted({(r.source, r.dataset_type) for r in rows})

    def kept(source: str, dtype: str) -> str:
        yes, no = agree[(source, dtype, True)], agree[(source, dtype, False)]
        return f"{yes}/{yes + no}" if yes + no else "-"

    lines = [
        (
            "Each question's intent is mapped from its dataset's own question type, then every label was read by hand "
            "(origin `checked`; `mapped_intent` keeps the mapping, `note` says why a label differs). The table gives, "
            "for each type in the sample, the mapped intent and how many checked labels kept it."
        ),
        "",
        "| source | dataset type | mapped intent | checked labels that kept it |",
        "|---|---|---|---|",
    ]
    for source, dtype in types:
        lines.append(f"| {source} | {dtype} | {mapped_intent(source, dtype)} | {kept(source, dtype)} |")
    lines += [
        "",
        f"A VQA-RAD question with several types takes the first of {', '.join(INTENT_PRIORITY)} that one of its types "
        "maps to. Mapping of every type: SLAKE "
        + "; ".join(f"{k} -> {v}" for k, v in SLAKE_TYPES.items())
        + ". VQA-RAD "
        + "; ".join(f"{k} -> {v}" for k, v in VQA_RAD_TYPES.items())
        + ".",
        "",
        (
            "Study descriptions come from dataset fields, not pixels: SLAKE's `modality` and `location`; VQA-RAD's "
            "`image_organ` with the modality (and, for chest films, frontal or lateral) from "
            "`routing_vqa_rad_studies.tsv`, a table made for the sampled images from their own questions and answers "
            "and by looking at each image."
        ),
        "",
        "The tools a label needs: the tools answering its intent (from the registry: "
        + "; ".join(f"{t}: {', '.join(sorted(a))}" for t, a in available.items())
        + ") that apply to the study, plus image_quality whenever another tool is needed or the intent is quality. "
        "describe and explain need no tool. Where each tool applies:",
        "",
    ]
    lines += [f"- {tool}: {TOOL_RULES[tool][0]}" for tool in available if tool in TOOL_RULES]
    lines += [
        "",
        (
            "So an abnormality question needs pneumonia_classifier and chest_anomaly on a frontal chest X-ray, "
            "asymmetry_map on CT, MRI and other X-rays, breast_ultrasound_classifier on breast ultrasound; a measurement "
            "question needs ct_attenuation on CT and nothing elsewhere (no tool measures MRI signal or X-ray density). "
            "A router's chosen tools are scored after the same rules, as the agent drops a tool that does not apply."
        ),
        "",
        "## Limits",
        "",
        (
            "- One intent per question. Some need two (a lesion's density is a finding and a measurement; 'how to treat "
            "the disease in this image' needs the finding, then knowledge); the label keeps the one the answer is about."
        ),
        (
            "- describe needs no tool by definition here, because these datasets' describe questions ask for one visible "
            "property. A router that runs every applicable tool when nothing specific is asked (the rule router does) "
            "scores no exact tool set on them: that costs time, not correctness, and shows as low tool precision."
        ),
        (
            "- The labels were mapped from the datasets' question types and read by one person, who labelled before "
            "running any router; a second reader would disagree on some (air in the bowel, 'what are the dark areas', "
            "'how can you tell there is no pneumothorax' were left as mapped)."
        ),
        (
            f"- No question in the sample asks about image quality ({quality_count(rows)} quality labels): the quality "
            "intent is not measured here."
        ),
        (
            "- Study descriptions come from dataset fields and a hand-made table, not from the images through the "
            "agent's gate: the gate's own mistakes (a lateral film read as frontal, a JPEG CT without Hounsfield units, "
            "on which ct_attenuation would not run) are outside this measurement."
        ),
        "- SLAKE questions come from a few templates (the same wording recurs), so its numbers move in steps.",
    ]
    return lines


def quality_count(rows: Sequence[Row]) -> int:
    return sum(r.intent == "quality" for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vesalius.eval.routing", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="labelled sample TSV (default: the bundled one)")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown report here (default: stdout)")
    p.add_argument("--vlm-url", default=None, help="also evaluate the model planner served at this URL")
    p.add_argument("--regenerate", action="store_true", help="rebuild the sample TSV from the shared data")
    p.add_argument("--shared-data", type=Path, default=Path("../shared/data"), help="for --regenerate")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    data = args.data or bundled_data()
    available = registry_tools()
    try:
        if args.regenerate:
            rows = regenerate(args.shared_data, data, available=available)
            write_rows(rows, data, available)
            print(f"wrote {len(rows)} questions to {data}", file=sys.stderr)
            return 0
        rows = load_rows(data, available)
        runs = [route_all("rules", rule_router(available), rows, progress=not args.quiet)]
        if args.vlm_url:
            model = ModelRouter(args.vlm_url, available)
            try:
                model.check()
                run = route_all("model planner", model, rows, fallback=model.fell_back, progress=not args.quiet)
            finally:
                model.client.close()
            run.notes = [f"Fell back to the rules ({sum(model.fallbacks.values())}):"] + [
                f"- {k} x {reason}" for reason, k in model.fallbacks.most_common(10)
            ]
            runs.append(run)
    except VesaliusError as e:  # a bad sample file (BenchmarkError), a model server that cannot be reached
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    command = "python -m vesalius.eval.routing " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(runs, rows, data, command.strip(), available)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
