"""The agent end to end on its embedded default (no model server): real pydicom, FAISS, SQLite, embeddings."""

from pathlib import Path

import numpy as np
import pytest
from terminology_files import OBO

from vesalius.agent.answer import Answer
from vesalius.agent.deps import Deps
from vesalius.agent.errors import AgentError
from vesalius.agent.graph import build_graph
from vesalius.agent.nodes.compose import NO_MODEL_NOTE
from vesalius.agent.service import Vesalius
from vesalius.retrieval import BuildOptions
from vesalius.retrieval.build import build
from vesalius.vision import StudyError


def test_graph_runs_its_nodes_in_order(make_settings, ct_path):
    deps = Deps.from_settings(make_settings())
    graph = build_graph(deps)
    state = {"thread_id": "t", "question": "Is there a pleural effusion?", "study_path": str(ct_path)}
    visited = [next(iter(update)) for update in graph.stream(state, stream_mode="updates")]
    # The tools and the retrieval run side by side: either may finish first, and compose waits for both.
    assert visited[:2] == ["ingest", "route"] and set(visited[2:4]) == {"tools", "retrieve"}
    assert visited[4:] == ["compose"]
    # A definitional question needs no image tool: the router skips the tools node.
    state["question"] = "What does pneumothorax mean?"
    visited = [next(iter(update)) for update in graph.stream(state, stream_mode="updates")]
    assert visited == ["ingest", "route", "retrieve", "compose"]


def test_citations_come_through_the_knowledge_layer_with_codes_and_sources(
    make_settings, small_imaging, tmp_path, ct_path
):
    obo = tmp_path / "test.obo"
    obo.write_text(OBO)
    report = build(
        tmp_path / "kb",
        BuildOptions(hpo=False, icd10cm=False, diseases=False, lay=False, imaging_path=small_imaging(), obo=(obo,)),
    )
    with Vesalius(make_settings(kb_dir=report.path)) as agent:
        a = agent.ask("What does pneumonia mean?", study=ct_path)
    top = a.citations[0]
    assert (top.concept_id, top.umls_cui, top.matched_term) == ("C0032285", "C0032285", "Pneumonia")
    assert top.snomed_ct and top.icd10cm and top.urgency
    assert top.sources == ["Vesalius imaging knowledge 2026.11.2: VESALIUS:pneumonia", "TEST 2026-01-01: TEST:2"]
    assert top.source.startswith("Vesalius imaging knowledge") and top.link == "http://purl.obolibrary.org/obo/TEST_2"
    assert a.knowledge_base.startswith(f"{report.version} (")
    asked = [(c.text, c.concept_id, c.method) for c in a.linked_concepts if c.where == "question"]
    assert asked == [("pneumonia", "C0032285", "exact")]
    answered = {c.concept_id for c in a.linked_concepts if c.where == "answer"}
    assert "C0032285" in answered
    for c in a.linked_concepts:
        assert (a.question if c.where == "question" else a.answer)[c.start : c.end] == c.text


def test_answer_cites_codes_and_says_no_model_was_used(make_settings, ct_path):
    steps = []
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there a pleural effusion on this CT?", study=ct_path, on_step=steps.append)
    # The tools and the retrieval run side by side, so either may finish first.
    assert steps[:2] == ["ingest", "route"] and set(steps[2:4]) == {"tools", "retrieve"}
    assert steps[4:] == ["compose"]
    assert a.answer_source == "tools_and_knowledge" and not a.model.used
    assert a.answer.startswith(a.direct_answer) and a.answer.split("\n\n", 1)[1].startswith(NO_MODEL_NOTE)
    top = a.citations[0]
    assert top.name == "Pleural effusion" and top.matched_term is not None
    assert top.umls_cui == "C0032227" and top.snomed_ct
    assert top.source.startswith("Vesalius imaging knowledge") and top.code_sources
    assert f"[{top.number}]" in a.answer
    assert "neither show nor exclude" in a.answer  # no detector for effusion exists yet: say so
    ran = {t.tool for t in a.tools if t.applied}
    assert ran == {"image_quality", "asymmetry_map", "vqa_model"}  # the VQA model reads every accepted image
    skipped = {t.tool: t.reason for t in a.tools if not t.applied}
    assert skipped["ct_attenuation"] == "not needed for this question"
    # The trained chest X-ray models were asked (an abnormality question) and refused by the gate, saying why.
    assert a.study_kind.kind == "ct" and a.study_kind.source == "dicom_tags"
    assert skipped["pneumonia_classifier"].endswith("this study is CT (DICOM Modality is CT)")
    assert skipped["chest_anomaly"] == skipped["pneumonia_classifier"]
    assert "not a diagnosis" in a.uncertainty.lower() or "nothing here is a diagnosis" in a.uncertainty.lower()


def test_tools_that_do_not_apply_say_why(make_settings, mr_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Describe this study", study=mr_path)
    reasons = {t.tool: t.reason for t in a.tools}
    assert "needs a CT image; this study is MR" in reasons["ct_attenuation"]
    assert {t.tool for t in a.tools if t.applied} == {"image_quality", "asymmetry_map", "vqa_model"}


def test_emergencies_named_in_the_question_come_first(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Could this be a tension pneumothorax? I'm scared, should I worry?", study=ct_path)
    assert a.route.audience == "patient"
    assert a.urgent and "Pneumothorax" in a.urgent[0] and "emergency" in a.urgent[0]
    assert "doctor" in a.answer


def test_follow_up_sees_the_thread_and_survives_a_restart(make_settings, ct_path):
    settings = make_settings()
    with Vesalius(settings) as agent:
        first = agent.ask("Could this be pneumonia?", study=ct_path)
    # A new process (here: a new agent on the same SQLite file) continues the thread without --study.
    with Vesalius(settings) as agent:
        second = agent.ask("What does that mean for the patient?", thread_id=first.thread_id)
        history = agent.thread(first.thread_id)["history"]
    assert second.turn == 2 and second.thread_id == first.thread_id
    assert second.study.study_id == first.study.study_id
    # "that" names no concept: retrieval used the earlier question and found the same concept again.
    assert first.citations[0].concept_id in [c.concept_id for c in second.citations]
    assert [h["question"] for h in history] == ["Could this be pneumonia?", "What does that mean for the patient?"]


def test_bad_input_leaves_the_thread_untouched(make_settings, ct_path, tmp_path):
    with Vesalius(make_settings()) as agent:
        first = agent.ask("Is there an effusion?", study=ct_path)
        with pytest.raises(AgentError, match="empty"):
            agent.ask("   ", thread_id=first.thread_id)
        bad = tmp_path / "bad.dcm"
        bad.write_text("not dicom")
        with pytest.raises(StudyError):
            agent.ask("Is there an effusion?", study=bad, thread_id=first.thread_id)
        with pytest.raises(AgentError, match="no conversation"):
            agent.ask("Hello?", thread_id="does-not-exist")
        assert len(agent.thread(first.thread_id)["history"]) == 1
        assert agent.thread(first.thread_id)["study_path"] == str(ct_path.resolve())


def test_answer_round_trips_through_its_json_schema(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("What is the attenuation of the tissue?", study=ct_path)
    again = Answer.model_validate_json(a.model_dump_json())
    assert again == a
    schema = Answer.model_json_schema()
    assert {"citations", "tools", "urgent", "uncertainty", "answer_source"} <= set(schema["properties"])
    ct = next(t for t in a.tools if t.tool == "ct_attenuation")
    assert ct.applied and "body_median_hu" in ct.measurements


def test_unreachable_model_server_degrades_with_a_warning(make_settings, ct_path, free_port):
    settings = make_settings(
        vlm_url=f"http://127.0.0.1:{free_port}/v1", vlm_model="m", vlm_timeout_s=5, vlm_backoff_s=0
    )
    with Vesalius(settings) as agent:
        a = agent.ask("Is there an effusion?", study=ct_path)
    assert a.answer_source == "tools_and_knowledge"
    assert any("cannot reach the model server" in w for w in a.warnings)
    with Vesalius(settings.model_copy(update={"require_model": True})) as agent:
        with pytest.raises(AgentError, match="cannot reach the model server"):
            agent.ask("Is there an effusion?", thread_id=a.thread_id)
        assert len(agent.thread(a.thread_id)["history"]) == 1  # the failed turn stored no half-answer
    with Vesalius(settings) as agent:
        assert agent.ask("And a pneumothorax?", thread_id=a.thread_id).turn == 2


def test_a_question_about_a_term_gets_no_urgent_banner(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("What does pneumothorax mean?", study=ct_path)
    assert a.route.intent == "explain" and a.urgent == []
    assert "Pneumothorax is an emergency when present" in a.answer  # the urgency is still said, in context
    assert all(not t.applied for t in a.tools)


def test_a_series_question_chooses_its_window_and_slices_and_the_thread_keeps_them(make_settings, tmp_path):
    from dicom_factory import write_series

    write_series(tmp_path / "ct", 12)
    with Vesalius(make_settings(vlm_max_images=3)) as agent:
        a = agent.ask("Is there a lung nodule?", study=tmp_path / "ct")
        assert a.route.window == "lung" and a.study.window.name == "lung"
        assert a.study.stack == "volume" and a.study.frames == 12
        assert "slices" in a.shown and "of 12" in a.shown and "lung window" in a.shown
        assert (
            a.deidentification is not None and "PatientName" in a.deidentification.replaced + a.deidentification.emptied
        )
        # The user's window wins over the question's, and stays with the thread.
        b = agent.ask("Is there a fracture on slice 3?", thread_id=a.thread_id, window="40,400")
        assert b.study.window.source == "user" and b.study.frame_shown == 2 and "slice 3 of 12" in b.shown
        c = agent.ask("And the bones?", thread_id=a.thread_id)
        assert c.study.window.source == "user"
        with pytest.raises(StudyError, match="image 40 does not exist"):
            agent.ask("What is on slice 40?", thread_id=a.thread_id)
        assert agent.thread(a.thread_id)["question"] == "And the bones?"  # the failed turn stored nothing


def test_chest_xray_answer_shows_calibrated_probability_regions_and_heatmap(make_settings, shared_data, tmp_path):
    from vesalius.vision.models.probability import shown
    from vesalius.vision.train.datasets import kermany_files

    paths, labels, _, held = kermany_files(shared_data)
    film = paths[int(np.flatnonzero(held & (labels == 1))[0])]  # a validation patient with pneumonia
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there pneumonia? I'm worried.", study=film, heatmap_dir=tmp_path)
        clinician = agent.ask("Is there pneumonia?", study=film, audience="clinician")
    tools = {t.tool: t for t in a.tools}
    assert a.study_kind.kind == "chest_xray_frontal" and a.study_kind.source == "image_classifier"
    [p] = tools["pneumonia_classifier"].probabilities
    assert p.label == "pneumonia" and 0 <= p.probability <= 1 and "calibrated" in tools["pneumonia_classifier"].summary
    anomaly = tools["chest_anomaly"]
    assert anomaly.applied and anomaly.anomaly is not None and Path(anomaly.heatmap_path).is_file()
    assert "asymmetry_map" in tools and not tools["asymmetry_map"].applied  # the trained detector replaces it
    if p.above_threshold:  # the model's alert comes before everything else, as a likelihood, with advice
        assert a.urgent[0].startswith("pneumonia_classifier: probability of pneumonia")
        assert "not a diagnosis" in a.urgent[0] and "see a clinician" in a.urgent[0]
    assert a.route.audience == "patient"  # "I'm worried": the answer is in plain words, the numbers for the clinician
    assert "cannot check for pneumonia" not in a.answer
    chance = f"puts the chance at about {min(99, max(1, round(p.probability * 100)))} in 100"
    assert chance in a.answer and "can be wrong" in a.uncertainty
    assert f"probability of pneumonia {shown(p.probability)}" in clinician.answer
    assert "calibrated on validation" in clinician.uncertainty and "pneumonia: AUROC" in clinician.uncertainty


def test_an_image_no_model_knows_is_answered_as_such(make_settings, tmp_path):
    from PIL import Image

    blank = tmp_path / "grey.png"
    Image.new("L", (512, 512), 128).save(blank)
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there pneumonia on this film?", study=blank)
    assert a.study_kind is not None and not a.study_kind.accepted
    first = a.answer.split(NO_MODEL_NOTE, 1)[1].strip()
    assert first.startswith("No trained model read this image: it is a blank image")
    assert "No tool here detects" not in a.answer  # the pneumonia model exists; it could not read this image
    assert not any(t.applied and t.model is not None for t in a.tools)
    assert not any("screening threshold" in note for note in a.urgent)


def test_every_concept_the_question_names_is_cited_not_only_the_search_top(make_settings, ct_path):
    """With one hit from the search, a second concept named by an abbreviation is still cited."""
    with Vesalius(make_settings(top_k=1)) as agent:
        a = agent.ask("Is there a pleural effusion or a PTX on this CT?", study=ct_path)
    names = [c.name for c in a.citations]
    assert names[:1] == ["Pleural effusion"] and "Pneumothorax" in names
    assert {c.matched_term for c in a.citations} >= {"Pleural effusion", "PTX"}
