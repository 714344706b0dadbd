"""A conversation about a study: follow-ups that lean on the last turn, a second study compared with the first
(across a restart of the process), a clarifying question when the study is ambiguous, and each sentence of the
answer tied to its evidence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from dicom_factory import write_series

from vesalius.agent.claims import claims, sentences
from vesalius.agent.follow_up import read_follow_up
from vesalius.agent.service import Vesalius
from vesalius.vision.models.probability import shown


def _films(shared_data, tmp_path) -> tuple[Path, Path]:
    """A normal film and one with pneumonia, of validation patients, copied so that a test may delete one."""
    from vesalius.vision.train.datasets import kermany_files

    paths, labels, _, held = kermany_files(shared_data)
    normal = paths[int(np.flatnonzero(held & (labels == 0))[0])]
    pneumonia = paths[int(np.flatnonzero(held & (labels == 1))[0])]
    return Path(shutil.copy(normal, tmp_path / "prior.jpeg")), Path(shutil.copy(pneumonia, tmp_path / "current.jpeg"))


def test_follow_ups_read_against_the_last_turn():
    history = [{"turn": 1, "question": "Is there a pleural effusion?", "answer": "..."}]
    assert read_follow_up("How sure are you?", history).kind == "confidence"
    assert read_follow_up("show me the heatmap", history).kind == "heatmap"
    side = read_follow_up("and on the left?", history)
    assert (side.kind, side.side, side.routed_as) == ("side", "left", "Is there a pleural effusion? and on the left?")
    assert read_follow_up("What about the liver?", history).kind == "elliptical"
    assert read_follow_up("Is there a fracture of the left femur?", history) is None  # stands on its own
    assert read_follow_up("How sure are you?", []) is None  # nothing to follow


def test_a_conversation_with_follow_ups(make_settings, ct_path, tmp_path):
    with Vesalius(make_settings()) as agent:
        first = agent.ask("Is there a pleural effusion?", study=ct_path, heatmap_dir=tmp_path)
        sure = agent.ask("How sure are you?", thread_id=first.thread_id)
        assert sure.follow_up.kind == "confidence" and sure.follow_up.refers_to == 1
        assert sure.direct_answer.startswith("How sure")
        # The VQA model's answer to the first question is restated with its probability, not answered anew.
        vqa = next(t for t in first.tools if t.tool == "vqa_model")
        assert f"{vqa.probabilities[0].probability:.2f}" in sure.direct_answer
        heat = agent.ask("Show me the heatmap", thread_id=first.thread_id)
        maps = [t.heatmap_path for t in heat.tools if t.heatmap_path]
        assert maps and heat.direct_answer.startswith("Heatmap: ") and maps[0] in heat.direct_answer
        left = agent.ask("and on the left?", thread_id=first.thread_id)
        assert left.follow_up.side == "left" and left.direct_answer.startswith("On the patient's left (image right")
        # Regions listed on the patient's left are the ones the tool placed on the image's right, and only those.
        regions = [r for t in left.tools for r in t.regions]
        listed = left.direct_answer.count(" region at ")
        assert listed == sum(1 for r in regions if "image right" in (r.side or ""))
        assert [t.turn for t in agent.history(first.thread_id)] == [1, 2, 3, 4]


def test_a_second_study_is_compared_with_the_first_after_a_restart(tmp_path, make_settings, shared_data):
    """The prior's findings and path are kept in the thread: a new process compares them, and when the prior's
    file has gone, it says it compared with what the thread stored."""
    prior, current = _films(shared_data, tmp_path)
    settings = make_settings()
    with Vesalius(settings) as agent:
        first = agent.ask("Is there pneumonia?", study=prior)
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ["PATH"]}
    env |= {"VESALIUS_DATA_DIR": str(settings.data_dir), "VESALIUS_CACHE_DIR": str(settings.cache_dir)}
    script = textwrap.dedent(f"""
        from vesalius.agent.service import Vesalius
        with Vesalius() as agent:
            a = agent.ask("What changed since the prior?", study={str(current)!r}, thread_id={first.thread_id!r})
            print(a.model_dump_json())
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    c = answer["comparison"]
    assert c["prior_from"] == "measured again" and c["prior_study_id"] == first.study.study_id
    assert c["current_study_id"] == answer["study"]["study_id"] != c["prior_study_id"]
    tools = {ch["tool"]: ch for ch in c["changes"]}
    assert {"pneumonia_classifier", "chest_anomaly"} <= tools.keys()
    before = next(t for t in first.tools if t.tool == "pneumonia_classifier").probabilities[0].probability
    assert f"P(pneumonia) {shown(before)}" in tools["pneumonia_classifier"]["prior"]
    assert answer["direct_answer"].startswith("Compared with the prior study")

    prior.unlink()  # the prior is gone: the thread's stored findings stand in
    with Vesalius(settings) as agent:
        again = agent.ask("Is it worse than before?", thread_id=first.thread_id)
    assert again.comparison.prior_from == "stored" and "could not be read again" in again.comparison.note
    assert {ch.tool for ch in again.comparison.changes} >= {"pneumonia_classifier"}


def test_several_series_ask_which_one_and_the_reply_resumes_the_question(make_settings, tmp_path):
    write_series(tmp_path / "mix", 5, series_number=3)
    write_series(tmp_path / "mix", 2, series_number=7, shuffle_seed=1)
    with Vesalius(make_settings()) as agent:
        asked = agent.ask("Is there a bleed?", study=tmp_path / "mix")
        assert asked.clarification is not None and "Which one" in asked.direct_answer
        assert len(asked.clarification.options) == 2 and not asked.tools
        assert agent.history(asked.thread_id) == []  # nothing answered yet
        answer = agent.ask("series 7 please", thread_id=asked.thread_id)
        assert answer.clarification is None and answer.question == "Is there a bleed?"
        assert answer.study.frames == 2  # series 7 has two slices
        later = agent.ask("Is there a fracture?", thread_id=asked.thread_id)
        assert later.clarification is None and later.study.frames == 2  # the choice stays with the thread


def test_a_reply_that_names_no_series_answers_about_the_largest(make_settings, tmp_path):
    write_series(tmp_path / "mix", 4, series_number=2)
    write_series(tmp_path / "mix", 2, series_number=5, shuffle_seed=1)
    with Vesalius(make_settings()) as agent:
        asked = agent.ask("Describe this study", study=tmp_path / "mix")
        answer = agent.ask("whichever", thread_id=asked.thread_id)
    assert answer.study.frames == 4 and any("named none of the series" in w for w in answer.warnings)


def test_every_sentence_of_an_answer_is_tied_to_its_evidence(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there a pleural effusion on this CT?", study=ct_path)
    assert [c.sentence for c in a.claims] == sentences(a.direct_answer) + sentences(
        a.answer.removeprefix(a.direct_answer)
    )
    tool_lines = [c for c in a.claims if c.sentence.startswith("image_quality:")]
    assert tool_lines and {e.ref for e in tool_lines[0].evidence} >= {"image_quality"}
    cited = [c for c in a.claims if "[1]" in c.sentence]
    assert cited and any(e.kind == "passage" and e.ref == "[1]" for e in cited[0].evidence)
    assert all(c.supported for c in a.claims)  # no model wrote any of it


def test_model_sentences_without_support_are_flagged(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there a pleural effusion on this CT?", study=ct_path)
    ran = [t for t in a.tools if t.applied]
    body = (
        f"The image quality tool reports {ran[0].summary.lower()}. "
        "The patient also has a broken toe and a history of gout.\n"
        f"A pleural effusion is fluid around the lung [1]."
    )
    found = claims("Direct.", body, "some-model", ran, a.citations, a.study)
    by_text = {c.sentence: c for c in found if c.author == "model"}
    assert not by_text["The patient also has a broken toe and a history of gout."].supported
    assert by_text["A pleural effusion is fluid around the lung [1]."].supported
    assert any(e.ref == "image_quality" for e in found[1].evidence)


def test_remove_option_drops_unsupported_model_sentences():
    from vesalius.agent.claims import Claim, without_unsupported

    body = "Supported one. Invented one. Supported two."
    found = [
        Claim(sentence="Supported one.", author="model", evidence=[], supported=True),
        Claim(sentence="Invented one.", author="model", evidence=[], supported=False),
    ]
    assert without_unsupported(body, found) == "Supported one. Supported two."


def test_the_prior_study_given_with_a_new_thread(make_settings, tmp_path, shared_data):
    prior, current = _films(shared_data, tmp_path)
    with Vesalius(make_settings()) as agent:
        a = agent.ask("Is there pneumonia?", study=current, prior=prior)
    assert a.comparison is not None and a.comparison.prior_from == "measured again"
    assert a.comparison.prior_study_id != a.study.study_id


def test_an_unnamed_side_is_asked_for_and_the_reply_answers_for_it(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        first = agent.ask("Is there a pleural effusion?", study=ct_path)
        asked = agent.ask("Is it bigger on that side?", thread_id=first.thread_id)
        assert asked.clarification is not None and asked.clarification.options == ["left", "right"]
        assert [t.turn for t in agent.history(first.thread_id)] == [1]  # the question waits for the reply
        answer = agent.ask("the left", thread_id=first.thread_id)
        assert answer.question == "Is it bigger on that side?" and answer.follow_up.side == "left"
        assert answer.direct_answer.startswith("On the patient's left (image right")
        named = agent.ask("Is it bigger on the right side?", thread_id=first.thread_id)
        assert named.clarification is None  # a side named outright needs no question
