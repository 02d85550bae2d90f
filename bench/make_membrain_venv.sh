#!/bin/bash
# The separate environment for bench/bench_membrain.py: CPU PyTorch and MONAI, to build MemBrain-seg's network
# (MONAI's DynUNet) for the side-by-side timing. Never a dependency of the plugin; lives in bench/.venv-membrain
# (gitignored). Safe to rerun: an existing environment is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-membrain"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, monai" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "torch==2.13.0" monai
fi
"$venv/bin/python" -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)"
