"""One `vesalius` distribution: a built wheel in a fresh virtual environment, the editable install, and vision-tool
plugins written against the 0.1 import names."""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
import warnings
from pathlib import Path

import pytest

import vesalius
from vesalius.vision.tools.old_names import OldNames

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kwargs)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A fresh virtual environment with only the built wheel installed; the dependencies come from the test
    environment through a path file (installing torch again would take minutes and the network)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(ROOT)]
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp.glob("vesalius-*.whl")
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-2000:]
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Only the dependencies: the test environment's own vesalius is an import hook, which a path file does not run.
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_the_wheel_installs_vesalius_and_nothing_else_at_top_level(wheel_env, tmp_path):
    python, cli = wheel_env / "bin" / "python", wheel_env / "bin" / "vesalius"
    here = {"cwd": tmp_path}  # not the source tree, whose folders would be on the path
    version = _run([str(python), "-c", "import vesalius; print(vesalius.__version__, vesalius.__file__)"], **here)
    assert version.returncode == 0, version.stderr
    number, where = version.stdout.split()
    assert number == vesalius.__version__ and str(wheel_env) in where
    for old in ("agent", "vision", "retrieval", "eval", "server"):
        gone = _run([str(python), "-c", f"import {old}"], **here)
        assert gone.returncode == 1 and f"No module named '{old}'" in gone.stderr, old
    # Package data travels in the wheel: the committed schema, the de-identification profile, the model cards.
    schema = _run([str(cli), "schema"], **here)
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "Answer"
    env = {**os.environ, "HOME": str(tmp_path), "VESALIUS_DATA_DIR": str(tmp_path / "data")}
    tools = _run([str(cli), "tools", "--json"], env=env, **here)
    assert tools.returncode == 0, tools.stderr
    assert {"pneumonia_classifier", "breast_ultrasound_classifier"} <= {t["name"] for t in json.loads(tools.stdout)}
    ct = _run([str(python), "-c", "from pydicom.data import get_testdata_file as g; print(g('CT_small.dcm'))"])
    seen = _run([str(cli), "inspect", "--json", ct.stdout.strip()], env=env, **here)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["deidentification"]["profile"].startswith("DICOM PS3.15")
    page = "from importlib import resources; print((resources.files('vesalius.server') / 'web/index.html').read_text())"
    web = _run([str(python), "-c", page], **here)
    assert web.returncode == 0 and "Decision support, not a diagnosis" in web.stdout, web.stderr


def test_every_package_folder_is_listed_for_the_wheel():
    """setuptools is given the packages by name (the folders map onto vesalius.*): a new one must be listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"vesalius"}
    for top in ("agent", "vision", "retrieval", "eval", "server"):
        found |= {"vesalius." + ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / top).rglob("__init__.py")}
    assert found == listed, f"unlisted: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"


def test_the_editable_install_maps_each_folder_under_vesalius():
    import vesalius.agent
    import vesalius.eval
    import vesalius.retrieval
    import vesalius.server
    import vesalius.vision

    for name in ("agent", "vision", "retrieval", "eval", "server"):
        package = sys.modules[f"vesalius.{name}"]
        assert Path(package.__file__).parent == ROOT / name
    assert Path(vesalius.__file__).parent == ROOT / "vesalius"


OLD_PLUGIN = textwrap.dedent(
    """
    from vision.tools.base import ToolResult  # the 0.1 name

    class Marker:
        name, description, applies_to = "old_marker", "a plugin written for 0.1", "any study"
        answers, outputs = frozenset({"quality"}), frozenset({"summary"})

        def applicability(self, study, kind):
            return None

        def run(self, study, out_dir):
            return ToolResult(tool=self.name, applied=True, reason="always", summary="written for 0.1")

    def make(store):
        return Marker()
    """
)


@pytest.fixture
def old_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    meta = site / "vesalius_old_plugin-0.1.dist-info"
    meta.mkdir(parents=True)
    (site / "vesalius_old_plugin.py").write_text(OLD_PLUGIN)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: vesalius-old-plugin\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text("[vesalius.tools]\nold_marker = vesalius_old_plugin:make\n")
    monkeypatch.syspath_prepend(str(site))
    before = list(sys.meta_path)
    yield
    sys.meta_path[:] = before  # the alias stays for the life of a process; a test process must not keep it
    for name in [m for m in sys.modules if m == "vision" or m.startswith(("vision.", "vesalius_old_plugin"))]:
        del sys.modules[name]


def test_a_plugin_using_the_old_names_works_with_a_deprecation_warning(old_plugin, make_settings, ct_path):
    assert "vision" not in sys.modules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with vesalius.Vesalius(make_settings()) as v:
            tools = {t.name: t for t in v.tools()}
            answer = v.ask("Is the image quality good enough?", study=ct_path)
            problems = v.warnings
    assert tools["old_marker"].source.startswith("plugin old_marker")
    marker = next(t for t in answer.tools if t.tool == "old_marker")
    assert marker.applied and marker.summary == "written for 0.1"
    # One class under both names: results of old plugins validate as the new type.
    import vision.tools.base

    assert vision.tools.base.ToolResult is sys.modules["vesalius.vision.tools.base"].ToolResult
    said = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("'vision.tools.base' is now 'vesalius.vision.tools.base'" in s for s in said), said
    assert any("old_marker" in p and "old name" in p and "0.3" in p for p in problems), problems
    assert any(isinstance(f, OldNames) for f in sys.meta_path)


def test_without_plugins_the_old_names_stay_unimportable(tmp_path):
    run = _run(
        [
            sys.executable,
            "-c",
            "import vesalius, vesalius.vision.tools.registry as r; r.ToolRegistry.default(); import vision",
        ],
        cwd=tmp_path,
    )
    assert run.returncode == 1 and "No module named 'vision'" in run.stderr
