#!/usr/bin/env bash
# Install Algora into .venv and start the platform with the example models.
# Usage: ./scripts/up.sh [--host H] [--port N] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
. scripts/services.sh
install_sandbox
exec .venv/bin/algora serve --examples examples "$@"
