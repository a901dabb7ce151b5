# Sourced by scripts/test.sh and scripts/up.sh: .venv with the exact versions of uv.lock.
# Usage: install_locked [uv sync options, e.g. --extra dev]
# uv itself comes from the package index at the version the lock names; then `uv sync
# --frozen` installs what the lock says (from the registries it names) and Algora, editable.
install_locked() {
  local python=${PYTHON:-python3.11} uv_version
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  uv_version=$(.venv/bin/python -c 'import tomllib
lock = tomllib.load(open("uv.lock", "rb"))
print(next(p["version"] for p in lock["package"] if p["name"] == "uv"))')
  if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $uv_version" ]; then
    .venv/bin/python -m pip install --quiet "uv==$uv_version"
  fi
  # --inexact: keep what else a developer installed; CI starts from nothing.
  # --compile-bytecode, as pip does: a module's compile warnings (a third party's invalid
  # escapes) then never surface as errors in a test that happens to import it first.
  .venv/bin/uv sync --frozen --inexact --compile-bytecode --quiet "$@"
}
