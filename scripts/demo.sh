#!/usr/bin/env bash
# Installs Doppel into ./.venv and runs the demo on the embedded defaults: no tokens, no GPU,
# no internet. Extra arguments go to `doppel demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh cpu
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/doppel demo "$@"
