"""`vesalius kb` as a user runs it: builds from format-exact UMLS and SNOMED CT files and from OBO, malformed input,
interrupted builds that resume, searches for people and for scripts. The interruption is a real signal to a real
process; everything else runs the command line in this process (the `cli` fixture)."""

import json
import signal
import subprocess
import time

from terminology_files import OBO, write_snomed, write_umls
from test_cli import VESALIUS

from vesalius.retrieval import KnowledgeBase
from vesalius.retrieval.build import current_build

# The small bases these tests build: none of the bundled sources but what each test names.
BUNDLED_OFF = ("--no-hpo", "--no-icd10cm", "--no-diseases", "--no-lay")


def kb_env(cli_env, tmp_path):
    return {**cli_env, "VESALIUS_KB_DIR": str(tmp_path / "kb")}


def test_build_from_umls_and_snomed_releases_merges_them_and_cites_both(cli, cli_env, tmp_path, small_imaging):
    env = kb_env(cli_env, tmp_path)
    umls = write_umls(tmp_path / "2025AA" / "META")
    snomed = write_snomed(tmp_path / "snomed")
    imaging = small_imaging()
    p = cli("kb", "build", *BUNDLED_OFF, "--imaging", str(imaging), "--umls", str(umls),
            "--snomed", str(snomed), "--json", env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["concepts"] >= 6 and report["problems"]["count"] == 0
    assert "embedding" in p.stderr  # progress bars on stderr

    shown = json.loads(cli("kb", "show", "C0032285", "--json", env=env).stdout)
    assert {ref["source"] for ref in shown["sources"]} >= {
        "UMLS 2025AA",
        "SNOMED CT INT 20250101",
    }  # the SNOMED record joined the UMLS concept through the CUI's SNOMED CT atom
    assert shown["snomed_ct"] == ["233604007"] and shown["icd10cm"] == ["J18.9"]
    assert "Disease or Syndrome" in shown["semantic_types"]
    text = cli("kb", "show", "SCTID:233604007", env=env).stdout
    assert "finding site: Lung" in text and "is a: " in text and "source: UMLS 2025AA C0032285" in text

    queries = "pneumonitis\nlung structure\n"
    p = cli("kb", "search", "--json", "--queries", "-", "--source", "UMLS", input=queries, env=env)
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["pneumonitis", "lung structure"]
    assert lines[0]["hits"][0]["umls_cui"] == "C0032285" and lines[0]["hits"][0]["matched_term"] == "Pneumonitis"
    assert lines[1]["hits"][0]["umls_cui"] == "C0024109"
    assert all("UMLS 2025AA" in " ".join(h["sources"]) for line in lines for h in line["hits"])


def test_malformed_lines_stop_the_build_or_are_skipped_and_counted(cli, cli_env, tmp_path, small_imaging):
    env = kb_env(cli_env, tmp_path)
    imaging = small_imaging()
    good = cli(
        "kb",
        "build",
        *BUNDLED_OFF,
        "--imaging",
        str(imaging),
        "--quiet",
        env=env,
    )
    assert good.returncode == 0, good.stderr
    in_use = current_build(tmp_path / "kb")
    bad = tmp_path / "bad.obo"
    bad.write_text(OBO.replace('synonym: "lung inflammation" EXACT []', 'synonym: "lung inflammation EXACT []'))
    line = OBO.splitlines().index('synonym: "lung inflammation" EXACT []') + 1

    p = cli(
        "kb",
        "build",
        *BUNDLED_OFF,
        "--imaging",
        str(imaging),
        "--obo",
        str(bad),
        "--quiet",
        env=env,
    )
    assert p.returncode == 2 and f"{bad}:{line}" in p.stderr and "--on-error skip" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and current_build(tmp_path / "kb") == in_use  # nothing replaced
    assert list((tmp_path / "kb" / ".work").iterdir()) == []

    p = cli("kb", "build", *BUNDLED_OFF, "--imaging", str(imaging), "--obo", str(bad), "--quiet",
            "--on-error", "skip", env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "skipped 1 malformed line(s) (bad.obo: 1)" in p.stdout
    info = cli("kb", "info", "--json", env=env)
    assert json.loads(info.stdout)["problems"]["count"] == 1
    assert current_build(tmp_path / "kb") != in_use


def test_an_interrupted_build_resumes_and_gives_the_same_base(cli, cli_env, tmp_path, small_imaging):
    env = kb_env(cli_env, tmp_path)
    obo = tmp_path / "test.obo"
    obo.write_text(OBO)
    # A fifth of the imaging knowledge: still a dozen chunks of 32 texts to interrupt, embedded in seconds.
    imaging = ["--imaging", str(small_imaging(40))]
    args = [
        "kb",
        "build",
        *BUNDLED_OFF,
        *imaging,
        "--obo",
        str(obo),
        "--chunk-rows",
        "32",
        "--quiet",
    ]
    proc = subprocess.Popen([VESALIUS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    chunks = []
    while time.monotonic() < deadline and len(chunks) < 3 and proc.poll() is None:
        chunks = list((tmp_path / "kb" / ".work").glob("*/vectors/0*.npy"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command again to resume" in err, err
    assert current_build(tmp_path / "kb") is None  # nothing half-built is in use
    kept = {p.name: p.stat().st_mtime_ns for p in chunks}

    p = cli(*args, env=env)
    assert p.returncode == 0, p.stderr
    assert "resumed: concepts, embeddings (" in p.stdout
    # the chunks finished before the interruption were kept, not recomputed
    resumed = KnowledgeBase.open(tmp_path / "kb")
    fresh_env = {**env, "VESALIUS_KB_DIR": str(tmp_path / "fresh")}
    assert cli(*args, env=fresh_env).returncode == 0
    fresh = KnowledgeBase.open(tmp_path / "fresh")
    assert resumed.version == fresh.version and len(kept) >= 3
    for query in ("lung inflammation", "collapsed lung", "bleeding in the brain"):
        a, b = resumed.search(query, k=5), fresh.search(query, k=5)
        assert [h.concept.id for h in a] == [h.concept.id for h in b]
        assert [round(h.dense, 5) for h in a] == [round(h.dense, 5) for h in b]


def test_search_and_show_for_people_and_scripts(cli, cli_env, tmp_path):
    env = kb_env(cli_env, tmp_path)
    assert cli("kb", "build", *BUNDLED_OFF, "--quiet", env=env).returncode == 0
    p = cli("kb", "search", "collapsed lung", "-k", "3", env=env)
    assert p.returncode == 0 and "C0032326" in p.stdout.splitlines()[1] and "named: 'collapsed lung'" in p.stdout
    p = cli("kb", "search", "lung", "--semantic-type", "Neoplastic Process", "--json", env=env)
    hits = json.loads(p.stdout)["hits"]
    assert hits and all("Neoplastic Process" in h["semantic_types"] for h in hits)
    for mode in ("dense", "lexical", "hybrid", "linked"):
        assert cli("kb", "search", "pleural fluid", "--mode", mode, env=env).returncode == 0
    p = cli("kb", "show", "NOPE:1", env=env)
    assert p.returncode == 2 and p.stderr.startswith("error: no concept with the code 'NOPE:1'")
    p = cli("kb", "build", "--no-imaging", *BUNDLED_OFF, env=env)
    assert p.returncode == 2 and "the sources gave no concepts" in p.stderr
    p = cli("kb", "build", "--index-kind", "annoy", env=env)
    assert p.returncode == 2 and "Invalid value for '--index-kind'" in p.stderr
    p = cli("kb", "search", input="\n", env=env)
    assert p.returncode == 2 and "no queries" in p.stderr
