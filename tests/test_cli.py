"""`vesalius` as a user runs it: stdout, stderr and exit codes. The installed command runs as a real process for
what needs one (the entry point, a user error's exit status, a reader that goes away); the rest of the command
line runs in this process (the `cli` fixture), which saves seconds of start-up per command."""

import json
import subprocess
import sys
from pathlib import Path

from vesalius.agent.answer import Answer

VESALIUS = str(Path(sys.executable).with_name("vesalius"))


def run(env, *args, stdin=None):
    return subprocess.run(
        [VESALIUS, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def test_ask_prints_summary_tools_answer_and_citations(cli_env, ct_path):
    p = run(cli_env, "ask", "--study", str(ct_path), "Is there a pleural effusion on this CT?")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for heading in ("Study    CT", "Tools", "Answer   (tools and knowledge base, no language model)", "Citations"):
        assert heading in out
    assert "UMLS C0032227" in out and "SNOMED CT" in out
    assert out.index("URGENT") < out.index("Study") if "URGENT" in out else True


def test_the_installed_command_reports_its_version_user_errors_and_a_closed_pipe(cli_env, tmp_path):
    p = run(cli_env, "--version")
    assert p.returncode == 0 and p.stdout.startswith("vesalius, version "), (p.stdout, p.stderr)
    p = run(cli_env, "ask", "--study", str(tmp_path / "missing.dcm"), "q")  # a real process's exit status
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    assert p.stderr.startswith("error: ") and "no such file" in p.stderr and len(p.stderr.splitlines()) == 1
    # The reader goes away before a word is written (`| head` that has seen enough): no traceback, exit 0.
    proc = subprocess.Popen([VESALIUS, "schema"], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b"", err.decode()


def test_ask_json_is_one_answer_document(cli, ct_path):
    p = cli("ask", "--json", "--study", ct_path, "What is the attenuation of the tissue?")
    assert p.returncode == 0, p.stderr
    answer = Answer.model_validate(json.loads(p.stdout))
    assert answer.study.modality == "CT" and answer.citations is not None


def test_demo_runs_on_the_file_bundled_with_pydicom(cli):
    p = cli("demo")
    assert p.returncode == 0, p.stderr
    assert "CT_small.dcm" in p.stderr and "Pleural effusion" in p.stdout and "HU" in p.stdout


def test_bad_input_is_one_line_and_exit_code_2(cli, tmp_path, ct_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(ct_path.read_bytes()[:20000])
    cases = [
        (("ask", "--study", str(truncated), "q"), "truncated"),
        (("ask", "--study", str(tmp_path / "missing.dcm"), "q"), "no such file"),
        (("ask", "--study", str(text), "q"), "neither DICOM nor a PNG, JPEG or TIFF"),
        (("ask", "--study", str(text), "  "), "the question is empty"),
        (("ask", "--prior", str(ct_path), "q"), "a prior study needs a current one"),
        (("ask", "--thread", "nope", "q"), "no conversation"),
    ]
    for args, expected in cases:
        p = cli(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stderr.startswith("error: ") and expected in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_unreachable_model_server_warns_or_fails_when_required(cli, cli_env, ct_path, free_port):
    env = cli_env | {
        "VESALIUS_VLM_URL": f"http://127.0.0.1:{free_port}",
        "VESALIUS_VLM_MODEL": "m",
        "VESALIUS_VLM_BACKOFF_S": "0",
    }
    p = cli("ask", "--study", ct_path, "Is there an effusion?", env=env)
    assert p.returncode == 0, p.stderr
    assert "Warnings" in p.stdout and "cannot reach the model server" in p.stdout
    p = cli("ask", "--require-model", "--study", ct_path, "Is there an effusion?", env=env)
    assert p.returncode == 2 and "cannot reach the model server" in p.stderr and "Traceback" not in p.stderr


def test_chat_keeps_a_thread_that_resumes_after_a_restart(cli, ct_path):
    p = cli("chat", "--study", ct_path, input="Is there a pneumothorax?\nWhat does that mean?\n")
    assert p.returncode == 0, p.stderr
    assert "(turn 1)" in p.stdout and "(turn 2)" in p.stdout
    thread = p.stderr.split("vesalius chat --thread ")[1].split(")")[0].strip()
    # A second run of the command (a new agent over the same conversation store) resumes the thread.
    p = cli("chat", "--json", "--thread", thread, input="Is the image quality good?\nAnd the noise?\n")
    assert p.returncode == 0, p.stderr
    assert "2 earlier turns" in p.stderr
    turns = [json.loads(line) for line in p.stdout.splitlines()]  # JSON Lines: one answer per line
    assert [(t["thread_id"], t["turn"]) for t in turns] == [(thread, 3), (thread, 4)]


def test_inspect_prints_the_summary_and_writes_what_a_model_sees(cli, tmp_path):
    from dicom_factory import write_series

    write_series(tmp_path / "series", 10, patient_name="Leak^Test")
    out = tmp_path / "out"
    p = cli("inspect", tmp_path / "series", "--window", "lung", "--out", out, "--images", "3")
    assert p.returncode == 0, p.stderr
    assert "slice 6 of 10" in p.stdout and "lung C-600/W1500" in p.stdout and "PatientName" in p.stdout
    report = json.loads((out / "study.json").read_text())
    assert report["summary"]["frames"] == 10 and len(report["written"]) == 3
    assert all(Path(f).exists() for f in report["written"])
    assert "Leak^Test" not in p.stdout + (out / "study.json").read_text()
    bad = cli("inspect", tmp_path / "series", "--window", "lungs")
    assert bad.returncode == 2 and "unknown window preset" in bad.stderr


def test_the_audience_is_chosen_once_and_kept_by_the_thread(cli, ct_path):
    first = json.loads(
        cli("ask", "--json", "--audience", "patient", "--study", ct_path, "Is there an effusion?").stdout
    )
    assert first["route"]["audience"] == "patient"  # the wording alone would read as a clinician's question
    follow = json.loads(cli("ask", "--json", "--thread", first["thread_id"], "What is the attenuation?").stdout)
    assert follow["route"]["audience"] == "patient"
    switched = cli("ask", "--json", "--audience", "clinician", "--thread", first["thread_id"], "And now?").stdout
    assert json.loads(switched)["route"]["audience"] == "clinician"
    refused = cli("ask", "--audience", "robot", "--study", ct_path, "Is this normal?")
    assert refused.returncode == 2 and "robot" in refused.stderr
