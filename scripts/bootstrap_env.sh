#!/usr/bin/env bash
# Create the project's virtual environment if it is missing (idempotent).
#
# torch is installed FIRST and pinned (TORCH_SPEC, default torch==2.13.0, a CPU build): letting
# pip resolve torch as a dependency pulls a multi-GB CUDA build. GPU users: create .venv and
# install your CUDA build of torch into it before running this; an importable torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.autospec-installed"

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[bootstrap] keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
    echo "[bootstrap] installing $TORCH_SPEC first"
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
fi
echo "[bootstrap] installing autospec-neuro (editable) with dev extras"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
touch "$stamp"
