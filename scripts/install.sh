#!/usr/bin/env bash
# Installs Vesalius into ./.venv and builds the default knowledge base (with --test instead: the test tools, vLLM's
# CPU build into ./.venv-vllm, Debian's PostgreSQL and Chromium, and no knowledge base: the tests build their own).
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
  bash scripts/install-system.sh
  bash scripts/install-vllm.sh
else
  .venv/bin/python -m pip install -q -e .
fi
# Optional: GDCM has no wheel on some platforms; without it those few transfer syntaxes fail with a clear error.
.venv/bin/python -m pip install -q -e '.[gdcm]' \
  || echo "install.sh: python-gdcm did not install; 12-bit JPEG Extended DICOM files will not decode" >&2
echo "installed: $(.venv/bin/vesalius --version)"
if [ "$with_tests" = 0 ]; then
  # The default knowledge base (imaging, diseases, lay terms, HPO, ICD-10-CM), built once so the first question
  # does not wait for it: about 11 minutes of embedding on 2 cores, then instant on every rerun (it is versioned).
  # The tests build the small bases they need themselves.
  echo "building the default knowledge base (once; about 11 minutes on 2 cores)"
  .venv/bin/vesalius kb build
fi
