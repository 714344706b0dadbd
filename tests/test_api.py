"""`import vesalius`: the public API, its errors, what importing it costs, and the answer's schema as a contract."""

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import vesalius
from vesalius.agent.schema import SCHEMA_VERSION, committed_schema, generated_schema

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "faiss", "sentence_transformers", "transformers", "pydicom", "langgraph", "bm25s", "scipy")


def test_the_public_names_resolve_and_every_error_is_a_vesalius_error():
    assert vesalius.__version__ and vesalius.__version__ != "0+unknown"
    for name in vesalius.__all__:
        assert getattr(vesalius, name) is not None, name
    errors = [vesalius.AgentError, vesalius.ModelServerError, vesalius.StudyError, vesalius.LimitError]
    errors += [vesalius.ModelWeightsError, vesalius.KnowledgeError]
    for cls in errors:
        assert issubclass(cls, vesalius.VesaliusError), cls
        exc = cls("the thing is broken", "Fix the thing")
        assert (exc.problem, exc.remedy) == ("the thing is broken", "Fix the thing")
        assert exc.one_line() == "the thing is broken. Fix the thing"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        vesalius.Nope  # noqa: B018


def test_no_two_exception_classes_share_a_name():
    seen: dict[str, str] = {}
    names = ["vesalius", *(info.name for info in pkgutil.iter_modules(vesalius.__path__, "vesalius."))]
    for part in ("agent", "vision", "retrieval", "eval"):
        package = importlib.import_module(f"vesalius.{part}")  # installed from its own folder, not under vesalius/
        names += [package.__name__, *(i.name for i in pkgutil.walk_packages(package.__path__, f"{package.__name__}."))]
    for name in names:
        if ".train" in name or name.endswith("gdcm_fallback"):
            continue  # training needs its extra; the GDCM helper runs as its own process
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                where = f"{obj.__module__}.{obj.__qualname__}"
                assert seen.setdefault(obj.__name__, where) == where, f"{where} and {seen[obj.__name__]}"
    assert {"VesaliusError", "AgentError", "StudyError", "KnowledgeError", "ModelServerError"} <= set(seen)


def _imported_after(code: str) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
        timeout=120,
    )
    return set(run.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import vesalius",
        "from vesalius import Answer, Vesalius, load_settings, VesaliusError",
        "from vesalius.agent.cli import main",
        "import vesalius.agent.answer, vesalius.agent.render, vesalius.vision.tools.base",
    ],
)
def test_importing_the_api_and_its_result_types_loads_no_heavy_library(code):
    loaded = _imported_after(code)
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY), sorted(m for m in loaded if m.split(".")[0] in HEAVY)[
        :10
    ]


def test_looking_up_a_code_loads_neither_torch_nor_faiss(make_settings):
    settings = make_settings()
    with vesalius.Vesalius(settings) as v:
        v.knowledge()  # the session's base, built once here if no other test built it yet
    loaded = _imported_after(
        "import vesalius\n"
        f"settings = vesalius.load_settings({{}}, cache_dir={str(settings.cache_dir)!r}, "
        f"data_dir={str(settings.data_dir)!r})\n"
        "with vesalius.Vesalius(settings) as v:\n"
        "    assert v.concept('C0032285').preferred_name == 'Pneumonia'"
    )
    assert not {m.split(".")[0] for m in loaded} & {"torch", "faiss", "sentence_transformers", "pydicom"}


def test_old_top_level_names_are_not_importable():
    for old in ("agent", "vision", "retrieval", "eval"):
        run = subprocess.run(
            [sys.executable, "-c", f"import {old}"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
        )
        assert run.returncode == 1, old
        # From the source tree the folder is found, and refuses with the name to use instead.
        assert f"use `import vesalius.{old}`" in run.stderr or "No module named" in run.stderr


def test_the_api_does_what_the_commands_do(make_settings, ct_path, tmp_path):
    with vesalius.Vesalius(make_settings()) as v:
        first = v.ask("Is there a pleural effusion on this CT?", study=ct_path)
        second = v.ask("What is the attenuation of the tissue?", thread_id=first.thread_id)
        history = v.history(first.thread_id)
        assert [(t.turn, t.question) for t in history] == [(1, first.question), (2, second.question)]
        assert history[1].answer == second.answer
        assert v.history("nobody") == []

        report = v.inspect(ct_path, window="lung", out=tmp_path / "out", images=1)
        assert isinstance(report, vesalius.Inspection) and report.summary.modality == "CT"
        assert report.summary.window.name == "lung" and len(report.written) == 1
        assert json.loads((tmp_path / "out" / "study.json").read_text())["summary"]["modality"] == "CT"

        records = list(v.classify([ct_path, tmp_path / "missing.dcm"]))
        assert records[0].kind.kind == "ct" and records[0].error is None
        assert "pneumonia_classifier" in records[0].not_applied  # a CT is not a chest film
        assert records[1].error and "missing.dcm" in records[1].path

        assert {"ct_attenuation", "pneumonia_classifier"} <= {t.name for t in v.tools()}
        hits = v.search("water on the lungs", k=3)
        assert hits and all(isinstance(h.concept, vesalius.Concept) for h in hits)
        assert v.concept("C0032285").preferred_name == "Pneumonia"
        with pytest.raises(vesalius.KnowledgeError, match="no concept with the code"):
            v.concept("C9999999")
        with pytest.raises(vesalius.AgentError, match="out of range"):
            v.search("effusion", k=0)
        assert v.knowledge_info()["concepts"] > 0
        assert v.answer_schema() == committed_schema()


def test_the_answer_schema_is_committed_with_its_version():
    """Changing `Answer` changes its schema: raise SCHEMA_VERSION and write the new file
    (`python -m vesalius.agent.schema --write`); never rewrite the file of a released version."""
    assert generated_schema() == committed_schema(), (
        "the answer's schema changed: raise SCHEMA_VERSION in agent/schema.py and run "
        "`python -m vesalius.agent.schema --write`"
    )
    folder = ROOT / "vesalius" / "schemas"
    versions = sorted(int(p.stem.split(".v")[1]) for p in folder.glob("answer.v*.json"))
    assert versions[-1] == int(SCHEMA_VERSION), "the newest committed schema is the current version"
    texts = [(folder / f"answer.v{v}.json").read_text() for v in versions]
    assert len(set(texts)) == len(texts), "two schema versions with the same schema"


def test_the_schema_command_prints_the_committed_file(cli):
    run = cli("schema")
    assert run.returncode == 0
    assert json.loads(run.stdout) == committed_schema()
