"""Clinical context with a question: de-identified before anything keeps or sends it, kept by the thread, shown
back as evidence, its named conditions cited, and a disagreement with a trained tool said out loud."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vesalius.agent.context import clinical_context
from vesalius.agent.errors import AgentError
from vesalius.agent.service import Vesalius

PHI = ("John Smith", "12345678", "12/03/2024", "john.smith@example.org", "+44 20 7946 0958")
TEXT = (
    "5-year-old, fever and cough for three days, known cardiomegaly. Mr. John Smith, MRN 12345678, seen 12/03/2024, "
    "mother's email john.smith@example.org, tel +44 20 7946 0958. Clinically pneumonia."
)


def test_identifiers_are_taken_out_by_their_shape():
    ctx = clinical_context(TEXT)
    assert not any(p in ctx.text for p in PHI)
    assert set(ctx.removed) == {"name", "identifier", "date", "contact"}
    assert "fever and cough for three days" in ctx.text and "5-year-old" in ctx.text
    assert clinical_context("a 93 year old man").text == "a 90 or more year old man"  # HIPAA: ages over 89
    plain = "Known COPD, smoker, breathless on exertion."
    assert clinical_context(plain).text == plain and clinical_context(plain).removed == []
    for bad, why in [("   ", "empty"), ("x" * 5000, "over 4,000"), ("a\x00b", "NUL")]:
        with pytest.raises(AgentError, match=why):
            clinical_context(bad)


def _films(shared_data):
    from vesalius.vision.train.datasets import kermany_files

    paths, labels, _, held = kermany_files(shared_data)
    return paths[int(np.flatnonzero(held & (labels == 0))[0])]


def test_context_is_evidence_is_kept_by_the_thread_and_never_stored_with_identifiers(make_settings, shared_data):
    normal = _films(shared_data)
    settings = make_settings()
    with Vesalius(settings) as agent:
        a = agent.ask("Is there pneumonia?", study=normal, context=TEXT)
        later = agent.ask("How sure are you?", thread_id=a.thread_id)
    dumped = a.model_dump_json()
    assert not any(p in dumped for p in PHI)
    assert a.context is not None and "[name]" in a.context.text
    assert "Clinical context given (de-identified) [context]: 5-year-old" in a.answer
    # A normal film against "clinically pneumonia": said, not resolved.
    assert "The context mentions pneumonia, but pneumonia_classifier puts its probability" in a.answer
    assert any(c.found_in == "context" and c.name == "Cardiomegaly" for c in a.citations)  # named in the context
    assert any(e.kind == "context" for c in a.claims for e in c.evidence)
    assert {lc.where for lc in a.linked_concepts} >= {"question", "context"}
    assert later.context == a.context  # the thread keeps it
    stored = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    assert not any(p.encode() in stored for p in PHI)


def test_context_from_a_file_on_the_command_line(cli, tmp_path, ct_path):
    report = tmp_path / "report.txt"
    report.write_text("Prior CT 01/02/2023: small left pleural effusion. Patient name: Jane Doe.")
    p = cli("ask", "--json", "--study", str(ct_path), "--context", f"@{report}", "Is the effusion still there?")
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert "Jane Doe" not in p.stdout and "01/02/2023" not in p.stdout
    assert answer["context"]["text"].startswith("Prior CT [date]: small left pleural effusion")
    for arg, why in [(f"@{tmp_path / 'missing.txt'}", "not a file"), ("", "empty")]:
        bad = cli("ask", "--study", str(ct_path), "--context", arg, "q")
        assert bad.returncode == 2 and why in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.vllm
def test_the_model_sees_the_context_de_identified_and_fenced(make_settings, vllm_server, ct_path):
    settings = make_settings(vlm_url=vllm_server.url, vlm_model=vllm_server.model, vlm_max_tokens=8)
    with Vesalius(settings) as agent:
        a = agent.ask("Is there an effusion?", study=ct_path, context=TEXT)
        [trace] = agent.traces(a.thread_id)
    prompt = json.dumps(trace.prompt)
    assert "Clinical context (de-identified" in prompt and "<<<5-year-old" in prompt
    assert not any(p in prompt for p in PHI)


def test_hostile_context_files_are_one_line(cli, tmp_path, ct_path):
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"fever " * 20_000)  # 120 KB: past the 64 KB a report needs
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Patient M\xfcller, fi\xe8vre".encode("latin-1"))
    long_text = "cough " * 1000  # 6,000 characters given inline
    for arg, why in [(f"@{huge}", "over 64 KB"), (f"@{latin}", "not UTF-8"), (f"@{tmp_path}", "not a file"),
                     (long_text, "over 4,000")]:  # fmt: skip
        bad = cli("ask", "--study", str(ct_path), "--context", arg, "q")
        assert bad.returncode == 2 and why in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
