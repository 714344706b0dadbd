#!/usr/bin/env bash
# Everything CI checks, in order, after `install.sh --test`: lint, formatting, types of the public API, the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
bash scripts/typecheck.sh
.venv/bin/python -m pytest "$@"
