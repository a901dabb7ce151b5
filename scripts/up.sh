#!/usr/bin/env bash
# Install Algora into .venv and start the platform with the example models.
# Usage: ./scripts/up.sh [--host H] [--port N] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install.sh
install_locked --extra server --extra s3 --extra vulnscan
. scripts/services.sh
install_sandbox
exec .venv/bin/algora serve --examples examples "$@"
