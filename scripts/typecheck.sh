#!/usr/bin/env bash
# mypy on the public API (`import vesalius` and the modules its signatures name), seen as installed: agent/ is
# vesalius.agent and so on. mypy cannot follow the editable install's import hook, so it reads a tree of links
# with the installed layout.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=.mypy_tree
rm -rf "$tree" && mkdir -p "$tree/vesalius"
for f in vesalius/*; do ln -s "$PWD/$f" "$tree/vesalius/"; done
for p in agent vision retrieval eval server; do ln -s "$PWD/$p" "$tree/vesalius/$p"; done
modules=(
    vesalius vesalius.errors vesalius._lazy
    vesalius.agent.service vesalius.agent.answer vesalius.agent.config vesalius.agent.errors vesalius.agent.inspect
    vesalius.agent.batch vesalius.agent.schema vesalius.agent.state vesalius.agent.cli vesalius.agent.kb_cli
    vesalius.agent.planner vesalius.agent.follow_up vesalius.agent.compare vesalius.agent.claims vesalius.agent.context
    vesalius.agent.vlm_client vesalius.agent.local_model vesalius.agent.nodes.route vesalius.agent.nodes.tools
    vesalius.agent.findings vesalius.agent.context_files vesalius.agent.fhir_report vesalius.agent.fhir_context
    vesalius.agent.sr_report vesalius.agent.sr_context vesalius.vision.study vesalius.vision.deid
    vesalius.vision.errors vesalius.vision.tools.base vesalius.vision.tools.registry
    vesalius.retrieval.errors vesalius.retrieval.sources.base vesalius.retrieval.choices vesalius.eval.routing vesalius.eval.routing_halves
    vesalius.server.app vesalius.server.studies vesalius.server.guards vesalius.server.uploads vesalius.server.run
)
MYPYPATH="$tree" exec .venv/bin/python -m mypy "${modules[@]/#/-m}" "$@"
