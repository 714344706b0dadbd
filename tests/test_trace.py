"""Each turn's trace: stored with the thread in the turn's own transaction, shown by `vesalius trace`."""

from __future__ import annotations

import json

import pytest

from vesalius.agent.service import Vesalius


def test_each_turn_leaves_a_trace_of_its_steps_route_and_tools(make_settings, ct_path):
    with Vesalius(make_settings()) as agent:
        first = agent.ask("Is there a pleural effusion?", study=ct_path)
        second = agent.ask("What is the attenuation?", thread_id=first.thread_id)
        traces = agent.traces(first.thread_id)
    assert [t.turn for t in traces] == [1, 2]
    for trace, answer in zip(traces, (first, second), strict=True):
        steps = [s.node for s in trace.steps]
        assert steps[:2] == ["ingest", "route"] and steps[-1] == "compose"
        assert trace.total_ms >= sum(s.ms for s in trace.steps) - 1 and all(s.ms >= 0 for s in trace.steps)
        assert [(t.tool, t.applied) for t in trace.tools] == [(t.tool, t.applied) for t in answer.tools]
        assert trace.route["intent"] == answer.route.intent and trace.citations == [
            c.concept_id for c in answer.citations
        ]
        assert trace.model["used"] is False and trace.prompt is None  # no model server here
    assert "ct_attenuation" in {t.tool for t in traces[1].tools if t.applied}


def test_a_failed_turn_leaves_no_trace(make_settings, ct_path, monkeypatch):
    with Vesalius(make_settings()) as agent:
        thread = agent.ask("Is there an effusion?", study=ct_path).thread_id

        def broken(*args):
            raise RuntimeError("a bug while composing")

        monkeypatch.setattr("vesalius.agent.nodes.compose.model_alerts", broken)
        with pytest.raises(RuntimeError):
            agent.ask("And now?", thread_id=thread)
        assert [t.turn for t in agent.traces(thread)] == [1]


def test_vesalius_trace_shows_a_thread(cli, ct_path):
    asked = json.loads(cli("ask", "--json", "--study", ct_path, "Is there an effusion?").stdout)
    shown = cli("trace", asked["thread_id"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("turn 1: ") and "route: abnormality" in shown.stdout
    assert "pneumonia_classifier: skipped: trained on frontal chest X-rays only" in shown.stdout
    one = json.loads(cli("trace", "--json", "--turn", "1", asked["thread_id"]).stdout)
    assert one["turn"] == 1 and {s["node"] for s in one["steps"]} >= {"ingest", "route", "compose"}
    missing = cli("trace", "nosuchthread")
    assert missing.returncode == 2 and "there is no conversation 'nosuchthread'" in missing.stderr
    assert cli("trace", "--turn", "7", asked["thread_id"]).returncode == 2
