"""A conversation may start with no study: questions about medicine are answered from the knowledge base, with the
direct answer first, citations with their codes and the audience's rules; a study can join the thread later."""

from __future__ import annotations

import json

from vesalius.agent.answer import Answer
from vesalius.agent.service import Vesalius


def test_a_knowledge_question_needs_no_study(cli):
    asked = cli("ask", "--json", "What is a pleural effusion?")
    assert asked.returncode == 0, asked.stderr
    answer = Answer.model_validate(json.loads(asked.stdout))
    assert answer.study is None and answer.deidentification is None and answer.route.intent == "explain"
    assert answer.direct_answer.startswith("Pleural effusion: ") and answer.direct_answer.endswith("[1].")
    cited = answer.citations[0]
    assert cited.umls_cui and cited.snomed_ct  # the codes come with the passage
    assert all(not t.applied and t.reason == "no study in this conversation" for t in answer.tools)
    assert "No image was looked at" in answer.uncertainty and not answer.urgent
    text = cli("ask", "What does pneumothorax mean?")
    assert text.returncode == 0 and text.stdout.splitlines()[0].startswith("Pneumothorax: ")
    assert "Study    none" in text.stdout


def test_a_patient_gets_plain_words_and_the_advice_to_see_a_doctor(make_settings):
    with Vesalius(make_settings()) as agent:
        a = agent.ask("What does pneumothorax mean?", audience="patient")
    assert "your image" not in a.answer  # nothing was measured, and the answer does not pretend it was
    assert "talk to your doctor" in a.answer and "doctor who knows you" in a.uncertainty
    assert a.citations and a.citations[0].passage in a.answer  # the project's plain-language explanation


def test_a_study_joins_the_thread_later(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        first = agent.ask("What is a pleural effusion?")
        follow = agent.ask("Is it dangerous?", thread_id=first.thread_id)
        assert follow.study is None and follow.turn == 2
        joined = agent.ask("Is there a pleural effusion on this CT?", study=ct_path, thread_id=first.thread_id)
        assert joined.turn == 3 and joined.study.modality == "CT" and joined.comparison is None
        assert any(t.applied for t in joined.tools)
        later = agent.ask("How sure are you?", thread_id=first.thread_id)  # follow-ups now have the study
        assert later.study.study_id == joined.study.study_id and later.follow_up.kind == "confidence"
        assert [t.turn for t in agent.history(first.thread_id)] == [1, 2, 3, 4]


def test_chat_starts_without_a_study(cli):
    chat = cli("chat", input="What is atelectasis?\n\n")
    assert chat.returncode == 0, chat.stderr
    assert "Atelectasis: " in chat.stdout and "conversation " in chat.stderr
    # Context given to a chat goes with its first question and stays with the thread for the next ones.
    told = cli(
        "chat", "--json", "--context", "Mr. John Smith, known COPD", input="What is COPD?\nWhat did the history say?\n"
    )
    assert told.returncode == 0, told.stderr
    first, second = (json.loads(line) for line in told.stdout.splitlines())
    assert first["context"]["text"] == second["context"]["text"] == "[name], known COPD"
    assert second["direct_answer"].startswith("The clinical context given (de-identified) says: [name], known COPD")


def test_text_only_benchmarks_run_through_the_agent_without_a_study(cli, tmp_path):
    """MedQA-style items have no image: each is a question without a study. With no language model nothing here
    picks an option, so each is unanswered and scored wrong, never an error and never a guess."""
    rows = [
        {
            "question": "Which finding defines a pleural effusion?",
            "options": {"A": "fluid", "B": "air"},
            "answer_idx": "A",
        },
        {
            "question": "What is atelectasis?",
            "options": {"A": "collapse of lung", "B": "a fracture"},
            "answer_idx": "A",
        },
    ]
    data = tmp_path / "medqa.jsonl"
    data.write_text("".join(json.dumps(r | {"answer": r["options"][r["answer_idx"]]}) + "\n" for r in rows))
    out = tmp_path / "run"
    run = cli("eval", "run", "medqa", "--data", str(data), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["prediction"].get("error") is None for r in records)
    assert all(r["prediction"]["full_answer"] and not r["scores"]["correct"] for r in records)
