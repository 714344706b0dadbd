"""Tools plug in through the `vesalius.tools` entry point group: a plugin installed next to Vesalius is listed,
routed and run by the unchanged agent; a broken plugin is reported without taking the built-in tools down. The command
line runs in this process (the `cli` fixture), with the plugin's distribution on its import path."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.store import ModelStore
from vesalius.vision.tools import ToolRegistry, ToolResult

PLUGIN = textwrap.dedent(
    """
    from PIL import ImageStat
    from vesalius.vision.tools.base import ToolResult

    class LungBrightness:
        name = "lung_brightness"
        description = "mean grey level of the displayed film (a stand-in for an external model)"
        applies_to = "frontal chest X-rays"
        answers = frozenset({"abnormality"})
        outputs = frozenset({"summary", "measurements"})

        def __init__(self, store):
            self.store = store

        def applicability(self, study, kind):
            return None if kind.is_chest_xray else f"chest X-rays only, this is {kind.kind}"

        def run(self, study, out_dir):
            mean = ImageStat.Stat(study.image.convert("L")).mean[0]
            return ToolResult(tool=self.name, applied=True, reason="chest X-ray",
                              summary=f"mean grey {mean:.1f}", measurements={"mean_grey": mean})

    def make(store):
        return LungBrightness(store)
    """
)


@pytest.fixture
def plugin_installed(tmp_path, monkeypatch):
    """The demo plugin's distribution (module, METADATA, entry points) in a folder on this process's import path,
    where the in-process command line (the `cli` fixture) discovers it as it would an installed distribution."""
    site = tmp_path / "site"
    (site / "vesalius_demo_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "vesalius_demo_plugin.py").write_text(PLUGIN)
    meta = site / "vesalius_demo_plugin-0.1.dist-info"
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: vesalius-demo-plugin\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(
        "[vesalius.tools]\nlung_brightness = vesalius_demo_plugin:make\nbroken = vesalius_demo_plugin:missing\n"
    )
    monkeypatch.syspath_prepend(str(site))  # undone after the test, like the module it imports
    sys.modules.pop("vesalius_demo_plugin", None)
    yield
    sys.modules.pop("vesalius_demo_plugin", None)


def test_a_plugin_is_listed_and_a_broken_one_reported(plugin_installed, cli):
    run = cli("tools", "--json")
    assert run.returncode == 0, run.stderr
    tools = {t["name"]: t for t in json.loads(run.stdout)}
    assert tools["lung_brightness"]["source"].startswith("plugin lung_brightness")
    assert tools["lung_brightness"]["answers"] == ["abnormality"]
    assert {"pneumonia_classifier", "chest_anomaly", "breast_ultrasound_classifier"} <= set(tools)
    assert "tool plugin 'broken'" in run.stderr and "AttributeError" in run.stderr


def test_the_agent_routes_and_gates_a_plugin_tool(plugin_installed, cli, shared_data, ct_path):
    film = min((shared_data / "kermany-cxr" / "train" / "NORMAL").iterdir())
    answers = {}
    for name, study in (("film", film), ("ct", ct_path)):
        run = cli("ask", "--study", study, "Is there an abnormality?", "--json")
        assert run.returncode == 0, run.stderr
        answers[name] = {t["tool"]: t for t in json.loads(run.stdout)["tools"]}
    assert answers["film"]["lung_brightness"]["applied"]
    assert answers["film"]["lung_brightness"]["measurements"]["mean_grey"] > 0
    assert answers["ct"]["lung_brightness"]["reason"] == "chest X-rays only, this is ct"


def test_a_tool_that_omits_its_declared_output_is_flagged(ct_path):
    from vesalius.vision import load_study

    class Liar:
        name, description, applies_to = "liar", "declares probabilities, returns none", "anything"
        answers, outputs = frozenset({"abnormality"}), frozenset({"probabilities"})

        def applicability(self, study, kind: StudyKind):
            return None

        def run(self, study, out_dir):
            return ToolResult(tool=self.name, applied=True, reason="always", summary="nothing")

    registry = ToolRegistry([Liar()], ModelStore())
    _, [result] = registry.run(load_study(ct_path), ["liar"], None)
    assert "declared probabilities but returned none" in result.caveats[-1]
    with pytest.raises(ValueError, match="two tools"):
        registry.add(Liar())
