"""The routing evaluation (vesalius.eval.routing): scoring checked by hand on a tiny sample, hostile sample files,
the tool rules, and the committed sample against the shared data it was drawn from."""

from __future__ import annotations

import pytest

from vesalius.agent.router import RoutePlan, plan_route
from vesalius.eval import routing
from vesalius.eval.errors import BenchmarkError

AVAILABLE = {
    "image_quality": frozenset({"quality"}),
    "ct_attenuation": frozenset({"measurement"}),
    "asymmetry_map": frozenset({"abnormality"}),
    "pneumonia_classifier": frozenset({"abnormality"}),
    "chest_anomaly": frozenset({"abnormality"}),
    "breast_ultrasound_classifier": frozenset({"abnormality"}),
}
HEADER = "\t".join(routing.COLUMNS)
TINY = [
    (
        "slake\t1\tIs there a pneumothorax?\tX-ray of the chest\tAbnormality\tabnormality\tabnormality\t"
        "image_quality,pneumonia_classifier,chest_anomaly\tchecked\t-"
    ),
    "slake\t2\tWhat modality is this?\tCT of the head\tModality\tdescribe\tdescribe\t-\tmapped\t-",
    (
        "vqa-rad\t3\tHow dense is the liver?\tCT of the abdomen\tCOLOR\tmeasurement\tmeasurement\t"
        "image_quality,ct_attenuation\tchecked\t-"
    ),
    "vqa-rad\t4\tWhat is a glioma?\tMRI of the head\tOTHER\texplain\texplain\t-\tmapped\t-",
]
ABNORMALITY_TOOLS = ["image_quality", "asymmetry_map", "pneumonia_classifier", "chest_anomaly"]
# What the stub router answers: right, right intent with every tool, wrong intent and tools, right.
PLANS = {
    "Is there a pneumothorax?": ("abnormality", ABNORMALITY_TOOLS + ["breast_ultrasound_classifier"]),
    "What modality is this?": ("describe", list(AVAILABLE)),
    "How dense is the liver?": ("abnormality", ABNORMALITY_TOOLS),
    "What is a glioma?": ("explain", []),
}


def _plan(intent: str, tools: list[str]) -> RoutePlan:
    return RoutePlan(tools=tools, reasons={t: "stub" for t in tools}, audience="clinician", intent=intent)


def stub_router(question: str, study: str) -> RoutePlan:
    return _plan(*PLANS[question])


def write(tmp_path, lines: list[str], header: str = HEADER):
    path = tmp_path / "sample.tsv"
    path.write_text("# a comment\n" + header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_scores_on_a_tiny_sample_match_the_hand_count(tmp_path):
    rows = routing.load_rows(write(tmp_path, TINY), AVAILABLE)
    assert [r.line for r in rows] == [3, 4, 5, 6]
    run = routing.route_all("stub", stub_router, rows, progress=False)
    # Tools after applicability: 1 -> {quality, pneumonia, chest} (asymmetry and breast do not apply to a chest
    # film): exact. 2 -> {quality, ct_attenuation, asymmetry} against none: 3 extra. 3 -> {quality, asymmetry}
    # against {quality, ct_attenuation}: 1 right, 1 extra, 1 missed. 4 -> none against none: exact.
    assert [o.tools for o in run.outcomes][:3] == [
        frozenset({"image_quality", "pneumonia_classifier", "chest_anomaly"}),
        frozenset({"image_quality", "ct_attenuation", "asymmetry_map"}),
        frozenset({"image_quality", "asymmetry_map"}),
    ]
    s = routing.score(run.outcomes)
    assert (s.n, s.intent_correct, s.exact, s.tp, s.fp, s.fn) == (4, 3, 2, 4, 4, 1)
    assert s.intent_accuracy == 0.75 and s.exact_match == 0.5
    assert s.precision == 0.5 and s.recall == 0.8
    lo, hi = routing.wilson(3, 4)  # the published Wilson interval of 3/4: 0.301 to 0.954
    assert lo == pytest.approx(0.3006, abs=1e-4) and hi == pytest.approx(0.9544, abs=1e-4)
    by_source = routing.score(o for o in run.outcomes if o.row.source == "vqa-rad")
    assert (by_source.intent_correct, by_source.exact) == (1, 1)
    text = routing.report([run], rows, tmp_path / "sample.tsv", "python -m vesalius.eval.routing", AVAILABLE)
    assert s.missed == 1
    assert "| stub | 4 | 75.0% [30.1%, 95.4%] | 50.0% [15.0%, 85.0%] | 50.0% | 80.0% | 1 |" in text
    assert "| measurement | 0 | 1 | 0 | 0 | 0 | 1 |" in text  # the confusion row of the missed measurement
    assert "| ct_attenuation | 1 | 1 | 0 | 1 | 1 |" in text


def test_the_rule_router_is_scored_as_plan_route_answers(tmp_path):
    rows = routing.load_rows(write(tmp_path, TINY), AVAILABLE)
    run = routing.route_all("rules", routing.rule_router(AVAILABLE), rows, progress=False)
    assert [o.intent for o in run.outcomes] == [plan_route(r.question, AVAILABLE).intent for r in rows]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("slake\t9\tWhy?\tCT of the head\tKG\texplain\texplain\t-\tchecked", "9 tab-separated fields, expected 10"),
        ("slake\t9\tWhy?\tCT of the head\tKG\texplain\tguess\t-\tchecked\t-", "intent 'guess' is not one of"),
        ("slake\t9\tWhy?\tCT of the head\tKG\texplain\texplain\tscalpel\tchecked\t-", "unknown tool 'scalpel'"),
        ("slake\t9\tWhy?\tPET of the head\tKG\texplain\texplain\t-\tchecked\t-", "study 'PET of the head' is not"),
        ("slake\t1\tAgain?\tCT of the head\tKG\texplain\texplain\t-\tchecked\t-", "slake question 1 is already on"),
        ("slake\t9\tWhy?\tCT of the head\tKG\texplain\tdescribe\t-\tmapped\t-", "a mapped label differs"),
        ("pubmed\t9\tWhy?\tCT of the head\tKG\texplain\texplain\t-\tchecked\t-", "source 'pubmed' is not"),
        ("slake\t9\t \tCT of the head\tKG\texplain\texplain\t-\tchecked\t-", "empty question"),
    ],
)
def test_a_malformed_line_is_one_error_naming_it(tmp_path, line, says):
    path = write(tmp_path, [*TINY[:2], line, *TINY[2:]])
    with pytest.raises(BenchmarkError) as e:
        routing.load_rows(path, AVAILABLE)
    message = e.value.one_line()
    assert message.startswith("sample.tsv line 5: ") and says in message
    assert "\n" not in str(e.value)


def test_a_bad_header_or_an_empty_file_is_named(tmp_path):
    with pytest.raises(BenchmarkError, match="line 2: the header is not"):
        routing.load_rows(write(tmp_path, TINY, header="source\tid\tquestion"), AVAILABLE)
    with pytest.raises(BenchmarkError, match="no questions"):
        routing.load_rows(write(tmp_path, []), AVAILABLE)
    (tmp_path / "blank.tsv").write_text("# only a comment\n")
    with pytest.raises(BenchmarkError, match="no header line"):
        routing.load_rows(tmp_path / "blank.tsv", AVAILABLE)
    (tmp_path / "binary.tsv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BenchmarkError):
        routing.load_rows(tmp_path / "binary.tsv", AVAILABLE)


def test_the_command_line_reports_a_bad_line_in_one_line(tmp_path, capsys):
    path = write(tmp_path, [TINY[0], "slake\t2\tno tabs enough"])
    assert routing.main(["--data", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: sample.tsv line 4: 3 tab-separated fields") and "\n" not in err


def test_the_command_line_writes_the_report(tmp_path):
    out = tmp_path / "ROUTING.md"
    assert routing.main(["--data", str(write(tmp_path, TINY)), "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert text.startswith("# Routing on development questions\n\nCommand: `python -m vesalius.eval.routing --data")
    assert "| rules | 4 |" in text and "## How the labels are made" in text


@pytest.mark.parametrize(
    ("intent", "study", "tools"),
    [
        ("abnormality", "X-ray of the chest", {"image_quality", "pneumonia_classifier", "chest_anomaly"}),
        ("abnormality", "X-ray of the chest (lateral view)", {"image_quality", "asymmetry_map"}),
        ("abnormality", "CT of the abdomen", {"image_quality", "asymmetry_map"}),
        ("abnormality", "MRI of the head", {"image_quality", "asymmetry_map"}),
        ("abnormality", "ultrasound of the breast", {"image_quality", "breast_ultrasound_classifier"}),
        ("abnormality", "ultrasound of the abdomen", set()),
        ("measurement", "CT of the chest", {"image_quality", "ct_attenuation"}),
        ("measurement", "MRI of the head", set()),
        ("quality", "MRI of the head", {"image_quality"}),
        ("describe", "CT of the chest", set()),
        ("explain", "X-ray of the chest", set()),
    ],
)
def test_the_tools_a_label_needs_follow_the_study(intent, study, tools):
    assert routing.needed_tools(intent, routing.parse_study(study), AVAILABLE) == tools


def test_the_rules_cover_the_registry_and_the_committed_sample_follows_them():
    available = routing.registry_tools()
    assert set(available) == set(routing.TOOL_RULES), "a new tool needs its applicability in TOOL_RULES"
    rows = routing.load_rows(routing.bundled_data(), available)
    assert {r.source for r in rows} == set(routing.SOURCES) and len(rows) == sum(routing.SAMPLE.values())
    for r in rows:
        assert r.tools == routing.needed_tools(r.intent, routing.parse_study(r.study), available), r.line
        assert r.mapped_intent == routing.mapped_intent(r.source, r.dataset_type), r.line
        assert (r.intent != r.mapped_intent) <= bool(r.note), f"line {r.line}: an override needs a note"


def test_the_model_planner_falls_back_to_the_rules_and_is_counted(monkeypatch, tmp_path):
    planner = pytest.importorskip("vesalius.agent.planner")
    if not hasattr(planner, "plan_with_model"):
        pytest.skip("vesalius.agent.planner has no plan_with_model yet")

    def plan_with_model(client, question, available, study, **kwargs):
        if question.startswith("What"):
            raise planner.PlanningError("unusable")
        return _plan("quality", ["image_quality"])

    monkeypatch.setattr(planner, "plan_with_model", plan_with_model)
    rows = routing.load_rows(write(tmp_path, TINY), AVAILABLE)
    model = routing.ModelRouter("http://127.0.0.1:9", AVAILABLE)  # never contacted: the stub plans
    run = routing.route_all("model planner", model, rows, fallback=model.fell_back, progress=False)
    assert [o.fallback for o in run.outcomes] == [False, True, False, True]
    assert routing.score(run.outcomes).fallbacks == 2 and model.fallbacks == {"unusable": 2}
    assert run.outcomes[1].intent == plan_route("What modality is this?", AVAILABLE).intent


def test_regenerating_from_the_shared_data_reproduces_the_committed_sample(shared_data, tmp_path):
    committed = routing.load_rows(routing.bundled_data())
    rows = routing.regenerate(shared_data, routing.bundled_data())
    assert [(r.source, r.id) for r in rows] == [(r.source, r.id) for r in committed]
    assert [(r.question, r.study, r.intent, r.tools, r.origin) for r in rows] == [
        (r.question, r.study, r.intent, r.tools, r.origin) for r in committed
    ]
    # Without the committed file the same questions come back with their mapped labels only.
    fresh = routing.regenerate(shared_data, None)
    assert [(r.source, r.id) for r in fresh] == [(r.source, r.id) for r in committed]
    assert all(r.origin == "mapped" and r.intent == r.mapped_intent for r in fresh)
    out = tmp_path / "again.tsv"
    routing.write_rows(rows, out)
    assert out.read_text() == routing.bundled_data().read_text()


def test_an_unreachable_model_server_stops_the_run_at_once(tmp_path, capsys):
    planner = pytest.importorskip("vesalius.agent.planner")
    if not hasattr(planner, "plan_with_model"):
        pytest.skip("vesalius.agent.planner has no plan_with_model yet")
    path = write(tmp_path, TINY)
    assert routing.main(["--data", str(path), "--vlm-url", "http://127.0.0.1:9", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the model server at http://127.0.0.1:9") and "\n" not in err
