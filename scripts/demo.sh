#!/usr/bin/env bash
# Installs Doppel into ./.venv and runs the demo on the embedded defaults: no tokens, no GPU,
# no internet. It trains a clone of the sample persona on this CPU (the first run: a few minutes;
# later runs reuse what is built) and serves it in a web chat. Extra arguments go to `doppel demo`
# (`--chat terminal` chats in this terminal; `--engine vllm` needs `scripts/setup.sh cpu` first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh train
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/doppel demo "$@"
