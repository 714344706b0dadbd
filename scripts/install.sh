#!/usr/bin/env bash
# Installs Vesalius into ./.venv (and, with --test, the test tools plus vLLM's CPU build into ./.venv-vllm).
# torch goes first and pinned: a looser spec pulls a multi-GB CUDA build (see docs/platform.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
with_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1 ;;
    *) echo "install.sh: unknown option '$arg' (use --test to add test tools and the vLLM environment)" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
if [ "$with_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
  bash scripts/install-vllm.sh
else
  .venv/bin/python -m pip install -q -e .
fi
# Optional: GDCM has no wheel on some platforms; without it those few transfer syntaxes fail with a clear error.
.venv/bin/python -m pip install -q -e '.[gdcm]' \
  || echo "install.sh: python-gdcm did not install; 12-bit JPEG Extended DICOM files will not decode" >&2
echo "installed: $(.venv/bin/vesalius --version)"
